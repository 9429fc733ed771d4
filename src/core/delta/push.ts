// `vdrep push`: ship the blocks changed since the last sync as one bundle the receiver
// commits as a unit; fall back to a full sync (and say why) whenever the change record or
// the replica cannot be vouched for. Cost follows the changed blocks, never the disk size.
import {timeoutMsOf} from '../psf/settings.js'
import {asVdrepError, FullSyncNeededError, ProtocolError, TransportError, UsageError} from '../errors.js'
import {HelloFlag} from '../protocol/messages.js'
import {SourceDisk} from '../disk/source-disk.js'
import type {PsfHeader} from '../psf/header.js'
import type {DiskStamp} from '../psf/disk-stamp.js'
import {FrameType, PROTOCOL_VERSION} from '../protocol/frame.js'
import {decodeCommitted, decodeHelloOk, SyncMode} from '../protocol/messages.js'
import {parseTarget} from '../target/target.js'
import {settledStat} from '../psf/disk-stamp.js'
import {sendBundle} from './sender.js'
import {claimRecord, type RecordClaim} from '../change-record/claim.js'
import {canVerify, curedByVerification, DoubtKind, needsFullSyncFlag} from '../change-record/doubt.js'
import {verifyOwnedRecord} from '../verification/verify-record.js'
import {checkOpenedDisk} from '../change-record/identity.js'
import type {Carrier} from '../transport/carrier.js'
import {connectReceiver} from '../transport/connect.js'
import {withCarrier} from '../psf/settings.js'
import {pushIsDue} from '../sync/due.js'
import {freezeWithoutTracker, freezeWithTracker, type FrozenSet} from './frozen-set.js'
import type {ChangeRecord} from '../change-record/change-record.js'
import {fullsync, type FullsyncOptions, type FullsyncResult} from '../fullsync/client.js'
import {runHook} from '../sync/hooks.js'
import {acquireDiskLock} from '../locks/index.js'
import {phaseEvent} from '../sync/progress.js'
import {helloRefused, remoteErrorOf} from '../fullsync/client-replies.js'
import {throttleFor} from '../sync/throttle.js'
import {helloFlags, newCommitId} from '../fullsync/plan.js'
import {compressOffer, sessionCompression, type CompressionReport} from '../compress/negotiate.js'
import {encodeClientHello} from '../protocol/client-hello.js'

export interface PushOptions extends FullsyncOptions {
  noFallback?: boolean
  ifDue?: boolean
  preHook?: string
  postHook?: string
  /** The last push before a planned failover (doc/failover.md): no tracker may run, the commit is marked final on both sides. */
  final?: boolean
}

export interface PushPhases {
  startupMs: number
  connectMs: number
  readMs: number
  sendMs: number
  journalMs: number
  applyMs: number
}

export interface PushResult {
  disk: string
  target: string
  mode: 'delta' | 'fullsync' | 'skipped'
  reason?: string
  seq?: number
  blocks: number
  zeroBlocks: number
  bytesSent: number
  /** Delta: bytes of DATA / DATA_Z payloads on the wire. */
  wireBytes?: number
  compression?: CompressionReport
  seconds: number
  phases?: PushPhases
  fullsync?: FullsyncResult
  /** The local verification this push ran first (no tracker, a record in doubt). */
  verified?: LocalVerification
  /** A final push: the source handed over (doc/failover.md). */
  final?: boolean
}

export interface LocalVerification {
  /** Why the record had to be checked. */
  reasons: string
  blocksScanned: number
  /** Blocks that differed from the index and were not marked: they are in this push. */
  blocksNewlyMarked: number
  seconds: number
}

export async function push(disk: string, opts: PushOptions = {}): Promise<PushResult> {
  const startupMs = performance.now()
  const started = performance.now()
  const lock = await acquireDiskLock(disk, 'push')
  try {
    // Why a delta cannot be sent, and whether it is a source that shrank (decided on the kind).
    let reason: string
    let shrank = false
    let verified: LocalVerification | undefined
    let target: string
    const claim = await claimRecord(disk, 'push', {lockHeld: true})
    try {
      const {record, tracker} = claim
      target = record.header.settings.target
      // A handover while a tracker runs could be followed by a write the replica never gets.
      if (opts.final && tracker)
        throw new UsageError('FINAL_TRACKER_RUNNING', `a tracker runs for ${disk}: a write after the final push would be lost at the failover`, {
          hint: 'shut the VM down, stop `vdrep track` (SIGTERM), then run `vdrep push --final` again',
        })
      if (claim.bound) opts.log?.(claim.bound, 'notice')
      if (opts.ifDue && !pushIsDue(record.header.lastSyncMs, record.header.settings.rpoSeconds)) {
        return {disk, target, mode: 'skipped', reason: 'not due yet', blocks: 0, zeroBlocks: 0, bytesSent: 0, seconds: 0}
      }
      await opts.begun?.()
      // The SSH login (the largest fixed cost of a push) runs while the local record is checked.
      opts.progress?.(phaseEvent('connect'))
      const connecting = startConnecting(record.header, opts)
      let handedOver = false
      try {
        const source = await SourceDisk.open(disk, opts.sourceReadFault)
        try {
          checkOpenedDisk(record, disk, await source.stat(), source.size, {trackerRunning: tracker !== null})
          // Only a push without a tracker keeps this stat as its clean point (a tracked disk is
          // written all the time: waiting for its mtime to settle would only cost time).
          const st = tracker ? await source.stat() : await settledStat(() => source.stat())
          const stamp: DiskStamp = {size: source.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs}
          const ctx = {trackerRunning: tracker !== null}
          let doubts = record.doubts(stamp, ctx)
          if (
            claim.owned &&
            doubts.some((d) => d.kind === DoubtKind.SOURCE_GREW) &&
            !doubts.some((d) => d.kind === DoubtKind.SOURCE_SHRANK || needsFullSyncFlag(d))
          ) {
            await claim.owned.grow(source.size)
            doubts = record.doubts(stamp, ctx)
          }
          // Doubt about the source is resolved by a local verification, not by a full sync: the
          // running tracker runs it behind its export (its freeze waits for it), or this push runs
          // it on the record it owns, before anything is frozen.
          if (doubts.length > 0 && doubts.every(curedByVerification) && canVerify(record.header)) {
            const why = doubts.map((d) => d.message).join('; ')
            if (tracker) {
              opts.log?.(`the tracker checks ${disk} against the block hash index (${why}); this push waits for it`, 'notice')
            } else if (claim.owned) {
              opts.log?.(`checking every block of ${disk} against the block hash index of the last sync first (a local read): ${why}`, 'notice')
              opts.progress?.(phaseEvent('verify'))
              const v = await verifyOwnedRecord(claim.owned, source, disk, stamp, {log: (_level, line) => opts.log?.(line, 'notice')})
              opts.log?.(
                `checked ${v.blocksScanned} blocks in ${v.seconds.toFixed(1)} s: ${v.blocksNewlyMarked} changed and not yet marked, now marked`,
                'notice',
              )
              verified = {reasons: why, blocksScanned: v.blocksScanned, blocksNewlyMarked: v.blocksNewlyMarked, seconds: v.seconds}
            }
            if (tracker || claim.owned) doubts = []
          }
          const doubt = doubts[0] ?? null
          if (!doubt) {
            handedOver = true
            const r = await pushDelta(disk, claim, source, connecting, opts, startupMs, started, tracker ? undefined : stamp)
            if (verified) r.verified = verified
            if (r.mode !== 'fullsync') return r
            reason = r.reason ?? 'the replica cannot take a delta'
          } else {
            reason = doubt.message
            shrank = doubt.kind === DoubtKind.SOURCE_SHRANK
          }
        } finally {
          await source.close()
        }
      } finally {
        if (!handedOver) await dropConnection(connecting)
      }
    } finally {
      await claim.release()
    }
    // A shrunk source is bad input (DESIGN: the contract), not a reason to cut the only second
    // copy from cron: refuse unless the user says --truncate-replica.
    if (shrank && !opts.truncateReplica) {
      throw new UsageError('SOURCE_SHRANK', `${reason}; nothing was sent`, {
        hint: 'if the disk was shrunk on purpose, run `vdrep push --truncate-replica` (a full sync that cuts the replica)',
      })
    }
    if (opts.final)
      throw new FullSyncNeededError(`a final push must be a delta, and a full sync is needed: ${reason}`, {
        hint: 'run `vdrep fullsync` (or push), then `vdrep push --final`',
      })
    if (opts.noFallback) throw new FullSyncNeededError(`a full sync is needed: ${reason}`, {hint: 'run `vdrep fullsync` (or push without --no-fallback)'})
    opts.log?.(`falling back to a full sync: ${reason}`, 'notice')
    const result = await fullsync(disk, {...opts, truncateReplica: opts.truncateReplica || shrank, lockHeld: true})
    return {
      disk,
      target,
      mode: 'fullsync',
      reason,
      blocks: 0,
      zeroBlocks: 0,
      bytesSent: result.bytesSent,
      seconds: (performance.now() - started) / 1000,
      fullsync: result,
    }
  } finally {
    await lock.release()
  }
}

export interface Connecting {
  conn: Promise<Carrier>
  startedMs: number
}

export function startConnecting(h: PsfHeader, opts: PushOptions): Connecting {
  const conn = connectReceiver(parseTarget(h.settings.target), {
    port: h.settings.deltaPort,
    log: opts.log,
    acceptNewHostKey: opts.acceptNewHostKey,
    timeoutMs: timeoutMsOf(opts.timeoutMs, h.settings),
    ssh: withCarrier(h.settings.ssh, opts.sshCarrier),
  })
  conn.catch(() => {}) // awaited by pushDelta, or dropped when the push falls back before it
  return {conn, startedMs: performance.now()}
}

export async function closeQuietly(conn: Carrier): Promise<void> {
  conn.abort()
  await conn.close().catch(() => {})
}

/** Close a connection that was started but is not used (the push falls back or failed first). */
export async function dropConnection(c: Connecting): Promise<void> {
  const conn = await c.conn.catch(() => undefined)
  if (conn) await closeQuietly(conn)
}

/**
 * `stampAtCheck` (no tracker): the disk's stamp that the change record was just checked against.
 * It, not a stat taken later, is what the commit records as the clean point: a write between
 * the check and the freeze (during the login, the hello, a pre-hook that flushes a guest) is
 * in neither the frozen set nor the record, and a later stamp would hide it from every push
 * after. With it, the next push sees that write and asks for a scan or a full sync.
 */
async function pushDelta(
  disk: string,
  claim: RecordClaim,
  source: SourceDisk,
  connecting: Connecting,
  opts: PushOptions,
  startupMs: number,
  started: number,
  stampAtCheck?: DiskStamp,
): Promise<PushResult> {
  const {record, tracker, writer: owner, owned} = claim
  const h = record.header
  const target = h.settings.target
  try {
    if (owned) await owned.mergeLeftoverInflight()
  } catch (err) {
    await dropConnection(connecting)
    throw err
  }
  const t0 = connecting.startedMs
  let conn = await connecting.conn
  let reader = conn.frames
  let writer = conn.writer
  let frozen: FrozenSet | undefined
  let committed = false
  let closing: Promise<void> | undefined
  let z: ReturnType<typeof sessionCompression> | undefined
  try {
    const commitId = newCommitId()
    const setting = opts.compress ?? h.settings.compress ?? 'auto'
    let offer = compressOffer(setting, parseTarget(target))
    const sendHello = () =>
      writer.send(
        FrameType.HELLO,
        encodeClientHello(h, {
          mode: SyncMode.DELTA,
          diskSize: source.size,
          // The fence flags only let the receiver answer "full sync needed" instead of refusing: the full sync that follows carries them too.
          flags: helloFlags({takeOverReplica: opts.takeOverReplica, discardReplicaChanges: opts.discardReplicaChanges}) | (opts.final ? HelloFlag.FINAL : 0),
          codecs: offer.codecs,
          nextCommit: commitId,
          path: conn.replicaPath,
        }),
      )
    await sendHello()
    let first = await reader.next()
    if (first?.type === FrameType.ERROR && offer.codecs.length > 0 && remoteErrorOf(first.payload).peerCode === 'BAD_FLAGS') {
      // An older receiver refuses the offer's flag: ask again without it, and send raw.
      opts.log?.('the replica host does not know compression (an older vdrep): sending raw', 'notice')
      offer = {codecs: [], why: 'the replica host runs a vdrep without compression (it refused the offer)'}
      await closeQuietly(conn)
      conn = await startConnecting(h, opts).conn
      reader = conn.frames
      writer = conn.writer
      await sendHello()
      first = await reader.next()
    }
    if (!first) throw new TransportError('RECEIVER_CLOSED', 'the replica host closed the connection during the hello')
    if (first.type === FrameType.ERROR) {
      const e = await helloRefused(first.payload, owner)
      if (e.code === 'FULL_SYNC_NEEDED') return fallback(disk, target, e.peerMessage)
      throw e
    }
    if (first.type !== FrameType.HELLO_OK) throw new ProtocolError('FRAME_UNEXPECTED', `expected HELLO_OK, got frame type ${first.type}`)
    const ok = decodeHelloOk(first.payload, offer.codecs.length > 0)
    if (ok.version !== PROTOCOL_VERSION)
      throw new ProtocolError('VERSION_MISMATCH', `the receiver speaks protocol version ${ok.version}; this client speaks ${PROTOCOL_VERSION}`, {
        hint: 'install the same vdrep release on both hosts',
      })
    const connectMs = performance.now() - t0
    let lastSeq = h.lastSeq
    if (ok.lastSeq !== lastSeq) {
      // The client died after the receiver committed: finish that push's bookkeeping.
      if (h.pendingSeq !== 0 && ok.lastSeq === h.pendingSeq) {
        opts.log?.(`the replica already committed sequence ${ok.lastSeq}; recording it`)
        await owner.adoptCommitted(ok.lastSeq)
        lastSeq = ok.lastSeq
      } else return fallback(disk, target, `replica sequence mismatch (replica at ${ok.lastSeq}, this disk's record at ${lastSeq})`)
    }
    const seq = lastSeq + 1
    // A flag wins over the disk's settings (`vdrep config DISK pre-hook ...`).
    const preHook = opts.preHook ?? h.settings.preHook
    const postHook = opts.postHook ?? h.settings.postHook
    if (preHook) await runHook(preHook, 'pre', disk)
    const pointInTime = Date.now()
    opts.progress?.(phaseEvent('freeze'))
    try {
      frozen = tracker ? await freezeWithTracker(tracker) : await freezeWithoutTracker(owned as ChangeRecord, source, source.size)
    } finally {
      if (postHook) await runHook(postHook, 'post', disk)
    }
    await owner.beginCommit(seq)
    opts.progress?.(phaseEvent('send', frozen.bitmap.count()))
    const throttle = throttleFor(h, opts)
    z = sessionCompression(setting, offer, ok.codec, writer, h.blockSize, throttle)
    const stats = await sendBundle(frozen, seq, source.size, h.blockSize, h.hashAlgo, h.replicaId, writer, throttle, z.sender)
    opts.progress?.(phaseEvent('commit'))
    const reply = await reader.next()
    if (!reply) throw new TransportError('RECEIVER_CLOSED', 'the replica host closed the connection before committing the bundle')
    if (reply.type === FrameType.ERROR) throw remoteErrorOf(reply.payload)
    if (reply.type !== FrameType.COMMITTED) throw new ProtocolError('FRAME_UNEXPECTED', `expected COMMITTED, got frame type ${reply.type}`)
    const c = decodeCommitted(reply.payload)
    if (c.seq !== seq) throw new ProtocolError('SEQUENCE_MISMATCH', `the replica committed sequence ${c.seq}, expected ${seq}`)
    committed = true
    // The replica has it: hang up now, while the record is brought up to date (the SSH close
    // handshake then costs no time of its own).
    writer.end()
    closing = closeQuietly(conn)
    await owner.storeBlockHashes(stats.hashes)
    // The commit below syncs the file, the cleared in-flight pages with it: if we die before
    // that, pendingSeq names this push and the next one records it (blocks still in flight
    // then go back to the active record and are sent again: harmless).
    await frozen.complete(true, {syncLater: true})
    await owner.commit({seq, pointInTimeMs: pointInTime, diskSize: source.size, commitId, stamp: stampAtCheck, final: opts.final})
    return {
      disk,
      target,
      mode: 'delta',
      seq,
      blocks: stats.blocks,
      zeroBlocks: stats.zeroBlocks,
      bytesSent: stats.bytesSent,
      wireBytes: stats.wireBytes,
      compression: {...z.report, ...(z.sender ? {stats: z.sender.stats()} : {})},
      seconds: (performance.now() - started) / 1000,
      phases: {startupMs, connectMs, readMs: stats.readMs, sendMs: stats.sendMs, journalMs: c.journalMs, applyMs: c.applyMs},
      ...(opts.final ? {final: true} : {}),
    }
  } catch (err) {
    if (frozen && !committed) await frozen.complete(false).catch(() => {})
    // The connection's own failures are already TransportErrors (frame reader and writer);
    // anything else failed on this host and is reported as such, not as a cut connection.
    throw asVdrepError(err)
  } finally {
    await (closing ?? closeQuietly(conn))
    await z?.sender?.close()
  }

  function fallback(d: string, t: string, reason: string): PushResult {
    return {disk: d, target: t, mode: 'fullsync', reason, blocks: 0, zeroBlocks: 0, bytesSent: 0, seconds: 0}
  }
}
