// `vdrep reprotect <promoted disk>` on the promoted side (doc/failover.md): make the old primary
// a replica of the promoted disk and ship, as one delta, only the union of what the promoted
// side wrote since the failover (and a rollback undid: both in its record's active set) and
// what the old primary holds differently (the OWED set its host sends). The owed set is made
// durable in this record before the other side becomes a replica; then an ordinary push ships.
import path from 'node:path'
import {asVdrepError, LockError, ProtocolError, TransportError, UsageError} from '../errors.js'
import {claimRecord} from '../change-record/claim.js'
import type {ChangeRecord} from '../change-record/change-record.js'
import {push, type PushOptions, type PushResult} from '../delta/push.js'
import {fullsync} from '../fullsync/client.js'
import {newCommitId} from '../fullsync/plan.js'
import {remoteErrorOf} from '../fullsync/client-replies.js'
import {FrameType} from '../protocol/frame.js'
import {decodeCommitted, HelloFlag, SyncMode} from '../protocol/messages.js'
import {decodeOwed, encodeReprotect, ReprotectFlag} from '../protocol/reprotect-messages.js'
import {readReplicaState, type PromotedInfo, type ReplicaState} from '../receiver/replica-state.js'
import {formatTarget, parseTarget} from '../target/target.js'
import {connectReceiver} from '../transport/connect.js'
import type {ReplicationSettings} from '../psf/settings.js'
import {timeoutMsOf} from '../psf/settings.js'
import {NO_TARGET} from './promoted-record.js'
import {OwedCollector} from './owed.js'
import type {Bitmap} from '../psf/bitmap.js'
import {encodeClientHello} from '../protocol/client-hello.js'

export interface ReprotectOptions extends PushOptions {
  /** The old primary disk: [user@]host[:port]:/path (under its `vdrep serve --root`) or a local path. */
  to?: string
  /** Overwrite the old primary's writes without a restore point when its record cannot say which they are. */
  discardDivergent?: boolean
  /** How to reach the old primary host (ssh settings, ports), recorded with the target. */
  settings?: Partial<ReplicationSettings>
}

export interface ReprotectResult {
  disk: string
  target: string
  /** Blocks the old primary held differently (unshipped at the failover, or written after it). */
  owedBlocks: number
  /** Of those, blocks not already pending here. */
  owedNew: number
  /** The exchange had been done by an earlier run. */
  alreadyReprotected: boolean
  /** Why a full sync ran instead of a delta (the old primary's record could not be trusted). */
  fullSyncReason?: string
  push: PushResult
}

type Exchange = {kind: 'delta'; owed: number; owedNew: number} | {kind: 'fullsync'; reason: string}

export async function reprotect(diskArg: string, o: ReprotectOptions = {}): Promise<ReprotectResult> {
  const disk = path.resolve(diskArg)
  const {state, error} = await readReplicaState(disk)
  if (error) throw error
  const notPromoted = (why: string) =>
    new UsageError('REPROTECT_NOT_PROMOTED', `${disk} ${why}`, {hint: 'run `vdrep failover <replica>` on this host first; once reprotected, `vdrep push` it'})
  if (!state?.promoted) throw notPromoted('is not a promoted replica (no failover recorded in its state)')
  const p = state.promoted
  if (!p.rollbackDone) throw notPromoted('has a failover that did not finish: run `vdrep failover` on it again')
  let target = ''
  let ex: Exchange | 'done'
  const claim = await claimRecord(disk, 'reprotect')
  try {
    const rec = claim.record
    if (rec.header.replicaId.toString('hex') !== p.newReplicaId) throw notPromoted('has a record that is not the one its failover made')
    const patch = {...o.settings, ...(o.to ? {target: formatTarget(parseTarget(o.to))} : {})}
    if (Object.keys(patch).length > 0) {
      // The settings live in the header, which only the record's owner writes.
      if (!claim.owned)
        throw new LockError(`a tracker runs for ${disk}: the target cannot be recorded while it owns the record`, {
          hint: 'give --to to `vdrep failover`, or stop `vdrep track` for this reprotect (it may run during later ones)',
        })
      await claim.owned.updateSettings(patch)
    }
    target = rec.header.settings.target
    if (target === NO_TARGET) throw new UsageError('BAD_TARGET', `${disk} has no target yet`, {hint: 'name the old primary disk with --to [user@]host:/path'})
    // Pushes since the exchange moved the record's chain on: the other side is a replica already.
    // The owed blocks join the active record: through the running tracker (as a VM write would), or directly.
    const {tracker, owned} = claim
    const mark = tracker
      ? async (bm: Bitmap) => {
          await tracker.markBlocks(bm)
          return bm.count()
        }
      : (bm: Bitmap) => (owned as ChangeRecord).markOwed(bm)
    ex = state.commit && rec.header.lastCommit.toString('hex') !== state.commit ? 'done' : await exchange(rec, state, p, o, mark)
  } finally {
    await claim.release()
  }
  if (ex !== 'done' && ex.kind === 'fullsync') {
    o.log?.(`a full sync instead (only differences travel): ${ex.reason}`, 'notice')
    const f = await fullsync(disk, o)
    const r: PushResult = {disk, target, mode: 'fullsync', reason: ex.reason, blocks: 0, zeroBlocks: 0, bytesSent: f.bytesSent, seconds: f.seconds, fullsync: f}
    return {disk, target, owedBlocks: 0, owedNew: 0, alreadyReprotected: false, fullSyncReason: ex.reason, push: r}
  }
  // No fallback: a full sync over the new replica would keep no restore point of the old primary's writes.
  const r = await push(disk, {...o, noFallback: true})
  return {
    disk,
    target,
    owedBlocks: ex === 'done' ? 0 : ex.owed,
    owedNew: ex === 'done' ? 0 : ex.owedNew,
    alreadyReprotected: ex === 'done',
    push: r,
  }
}

async function exchange(
  rec: ChangeRecord,
  state: ReplicaState,
  p: PromotedInfo,
  o: ReprotectOptions,
  mark: (owed: Bitmap) => Promise<number>,
): Promise<Exchange> {
  const h = rec.header
  const conn = await connectReceiver(parseTarget(h.settings.target), {
    port: h.settings.deltaPort,
    log: o.log,
    acceptNewHostKey: o.acceptNewHostKey,
    timeoutMs: timeoutMsOf(o.timeoutMs, h.settings),
    ssh: h.settings.ssh,
  })
  let ok = false
  try {
    await conn.writer.send(
      FrameType.HELLO,
      encodeClientHello(h, {mode: SyncMode.DELTA, flags: HelloFlag.REPROTECT, nextCommit: newCommitId(), path: conn.replicaPath}),
    )
    await conn.writer.send(
      FrameType.REPROTECT,
      encodeReprotect({
        oldReplicaId: Buffer.from(p.oldReplicaId, 'hex'),
        linkPrev: state.prevCommit ? Buffer.from(state.prevCommit, 'hex') : Buffer.alloc(16),
        seq: h.lastSeq,
        epoch: p.epoch,
        flags: o.discardDivergent ? ReprotectFlag.DISCARD_DIVERGENT : 0,
      }),
    )
    const owed = new OwedCollector(rec.blockCount)
    while (!owed.done) {
      const f = await conn.frames.next()
      if (!f) throw new TransportError('RECEIVER_CLOSED', 'the old primary host closed the connection during the reprotect; nothing was changed there')
      if (f.type === FrameType.ERROR) {
        const e = remoteErrorOf(f.payload)
        if (e.code === 'FULL_SYNC_NEEDED') {
          ok = true
          return {kind: 'fullsync', reason: e.peerMessage}
        }
        throw e
      }
      if (f.type !== FrameType.OWED) throw new ProtocolError('FRAME_UNEXPECTED', `expected OWED, got frame type ${f.type}`)
      owed.add(decodeOwed(f.payload, rec.blockCount))
    }
    // Durable here before the other side becomes a replica: no owed block can be forgotten.
    const owedNew = await mark(owed.bitmap)
    await conn.writer.send(FrameType.OWED_RECORDED, Buffer.alloc(0))
    const done = await conn.frames.next()
    if (!done) throw new TransportError('RECEIVER_CLOSED', 'the old primary host closed the connection before it confirmed; run `vdrep reprotect` again')
    if (done.type === FrameType.ERROR) throw remoteErrorOf(done.payload)
    if (done.type !== FrameType.COMMITTED) throw new ProtocolError('FRAME_UNEXPECTED', `expected COMMITTED, got frame type ${done.type}`)
    const c = decodeCommitted(done.payload)
    if (c.seq !== h.lastSeq) throw new ProtocolError('SEQUENCE_MISMATCH', `the old primary became a replica at sequence ${c.seq}, expected ${h.lastSeq}`)
    ok = true
    return {kind: 'delta', owed: owed.bitmap.count(), owedNew}
  } catch (err) {
    throw asVdrepError(err)
  } finally {
    conn.writer.end()
    if (!ok) conn.abort()
    await conn.close().catch(() => {})
  }
}
