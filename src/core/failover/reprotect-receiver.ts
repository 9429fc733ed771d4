// The old primary's host side of a reprotect (doc/failover.md): its disk becomes a replica of
// the promoted disk. Refused unless the disk's own record is the promoted replica's old source
// and sits on the same commit chain; the blocks it holds that the promoted side lacks (the
// record's active and in-flight sets, checked locally first when the record is in doubt) go to
// the client, which records them durably before this side writes the replica state. Nothing of
// the old primary's is discarded here: the first push's commit keeps what it overwrites as a
// restore point. An untrusted record is overwritten only by the full sync the user chose.
import fs from 'node:fs/promises'
import path from 'node:path'
import {FullSyncNeededError, LockError, ProtocolError, ReplicaForeignError, UsageError} from '../errors.js'
import {claimRecord} from '../change-record/claim.js'
import type {ChangeRecord} from '../change-record/change-record.js'
import {canVerify, curedByVerification} from '../change-record/doubt.js'
import {unionOf} from '../change-record/moves.js'
import {SourceDisk} from '../disk/source-disk.js'
import {settledStat, type DiskStamp} from '../psf/disk-stamp.js'
import {psfPathFor} from '../psf/psf-file.js'
import {FrameType} from '../protocol/frame.js'
import type {FrameSource} from '../protocol/frame-reader.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import {encodeCommitted, type Hello} from '../protocol/messages.js'
import {decodeReprotect, encodeOwed, ReprotectFlag, type Reprotect} from '../protocol/reprotect-messages.js'
import {readReplicaState, statePathFor, writeReplicaState, type ReplicaState} from '../receiver/replica-state.js'
import type {SessionLog} from '../receiver/session-log.js'
import {fsyncDir} from '../util/fs-atomic.js'
import {verifyOwnedRecord} from '../verification/verify-record.js'
import {Bitmap} from '../psf/bitmap.js'
import {owedPieces} from './owed.js'

const ZERO16 = Buffer.alloc(16)
export const DEMOTED_SUFFIX = '.demoted'

export async function runReprotectSession(hello: Hello, disk: string, reader: FrameSource, writer: FrameWriter, log: SessionLog): Promise<void> {
  const say = (line: string) => log(line, `reprotect ${disk}`)
  const first = await reader.next()
  if (!first) return
  if (first.type !== FrameType.REPROTECT) throw new ProtocolError('FRAME_UNEXPECTED', `expected REPROTECT, got frame type ${first.type}`)
  const m = decodeReprotect(first.payload)
  const newId = hello.replicaId.toString('hex')
  const link = hello.lastCommit.toString('hex')
  const {state, error} = await readReplicaState(disk)
  if (error) throw error
  if (state && !state.promoted) {
    // A rerun after the state was written: finish (the client recorded the owed set before).
    if (state.replicaId === newId && state.commit === link) {
      await demoteRecord(disk)
      return finish(writer, reader, new Bitmap(Math.ceil(hello.diskSize / hello.blockSize)), state.lastSeq)
    }
    throw new ReplicaForeignError(`${disk} is a replica of another source (replica id ${state.replicaId}); nothing was written`, {
      hint: 'reprotect to the old primary disk of this replica',
    })
  }
  // The session holds the replica's lock, which is this disk's lock (one file, `<disk>.vdrep.lock`):
  // no tracker can start, and no push of the old record can run, while this converts it.
  const claim = await claimRecord(disk, 'reprotect', {lockHeld: true})
  let source: SourceDisk | undefined
  try {
    if (!claim.owned)
      throw new LockError(`a tracker runs for ${disk}: its VM may still write it`, {hint: 'shut the VM down and stop `vdrep track` there first'})
    const rec = claim.owned
    const h = rec.header
    if (!h.replicaId.equals(m.oldReplicaId))
      throw new UsageError(
        'REPROTECT_NOT_OLD_SOURCE',
        `the record of ${disk} is replica id ${h.replicaId.toString('hex')}; the promoted replica's source was ${m.oldReplicaId.toString('hex')}; nothing was written`,
        {hint: 'name the disk that replicated to the promoted replica'},
      )
    if (h.diskSize !== hello.diskSize || h.blockSize !== hello.blockSize)
      throw new UsageError(
        'REPROTECT_SIZE',
        `${disk} is ${h.diskSize} bytes in blocks of ${h.blockSize}; the promoted disk ${hello.diskSize} in ${hello.blockSize}`,
      )
    source = await SourceDisk.open(disk)
    const st = await settledStat(() => (source as SourceDisk).stat())
    const stamp: DiskStamp = {size: source.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs}
    const why = untrusted(rec, link, m, stamp)
    let verified = ''
    if (!why) {
      const doubts = rec.doubts(stamp, {trackerRunning: false})
      if (doubts.length > 0) {
        say(`checking ${disk} against its block hash index first (${doubts.map((d) => d.message).join('; ')})`)
        const v = await verifyOwnedRecord(rec, source, disk, stamp)
        verified = `, ${v.blocksNewlyMarked} found by a local check`
      }
    } else {
      if (!(m.flags & ReprotectFlag.DISCARD_DIVERGENT))
        throw new UsageError(
          'DIVERGENT_UNKNOWN',
          `the record of ${disk} cannot be trusted (${why}): which of its blocks hold writes the promoted disk lacks cannot be told, and the full sync that would follow keeps no restore point of them; nothing was written`,
          {hint: 'copy the old primary disk aside if it holds anything of value, then run `vdrep reprotect --discard-divergent`'},
        )
      await fs.rm(statePathFor(disk), {force: true}) // a promoted disk's state: the full sync finds a seed
      await demoteRecord(disk)
      throw new FullSyncNeededError(`the old primary's record cannot be trusted: ${why}`)
    }
    const maps = await rec.bitmaps()
    const owed = unionOf(maps.active, maps.inflight)
    say(
      `${owed.count()} blocks of ${disk} differ from the promoted disk's last commit (unshipped or written after the failover${verified}): they are kept as restore point ${m.seq} by the first push`,
    )
    for (const p of owedPieces(owed)) await writer.send(FrameType.OWED, encodeOwed(p))
    const ack = await reader.next()
    if (!ack) throw new ProtocolError('UNEXPECTED_EOF', 'the client closed before it recorded the owed blocks; nothing was changed')
    if (ack.type !== FrameType.OWED_RECORDED) throw new ProtocolError('FRAME_UNEXPECTED', `expected OWED_RECORDED, got frame type ${ack.type}`)
    const dst = await source.stat()
    const next: ReplicaState = {
      replicaId: newId,
      complete: true,
      resumeBlock: 0,
      diskSize: hello.diskSize,
      blockSize: hello.blockSize,
      hashAlgo: hello.hashAlgo,
      generation: h.generation,
      lastSeq: m.seq,
      digest: '',
      size: Number(dst.size),
      mtimeNs: dst.mtimeNs.toString(),
      ctimeNs: dst.ctimeNs.toString(),
      updatedMs: Date.now(),
      commitMs: Date.now(),
      commit: link,
      ...(m.linkPrev.equals(ZERO16) ? {} : {prevCommit: m.linkPrev.toString('hex')}),
      epoch: m.epoch,
    }
    await writeReplicaState(disk, next)
    await source.close()
    source = undefined
    await demoteRecord(disk)
    say(`${disk} is now a replica of ${newId} at sequence ${m.seq}`)
    await writer.send(FrameType.COMMITTED, encodeCommitted({seq: m.seq, journalMs: 0, applyMs: 0}))
  } finally {
    await source?.close()
    await claim.release()
  }
}

/** Why the old primary's record cannot say which blocks differ, or null. */
function untrusted(rec: ChangeRecord, link: string, m: Reprotect, stamp: DiskStamp): string | null {
  const lastCommit = rec.header.lastCommit
  if (lastCommit.toString('hex') !== link && (m.linkPrev.equals(ZERO16) || !lastCommit.equals(m.linkPrev)))
    return "its last commit is not the promoted replica's (a record restored from a copy, or synced elsewhere since)"
  const doubts = rec.doubts(stamp, {trackerRunning: false})
  if (doubts.length > 0 && !(doubts.every(curedByVerification) && canVerify(rec.header))) return doubts.map((d) => d.message).join('; ')
  return null
}

/** The old record leaves its place (kept beside it for forensics): no tracker or push runs from it again. */
async function demoteRecord(disk: string): Promise<void> {
  const psf = psfPathFor(disk)
  if (!(await fs.lstat(psf).catch(() => undefined))) return
  await fs.rename(psf, `${psf}${DEMOTED_SUFFIX}`)
  await fsyncDir(path.dirname(psf))
}

async function finish(writer: FrameWriter, reader: FrameSource, empty: Bitmap, seq: number): Promise<void> {
  for (const p of owedPieces(empty)) await writer.send(FrameType.OWED, encodeOwed(p))
  const ack = await reader.next()
  if (!ack || ack.type !== FrameType.OWED_RECORDED) throw new ProtocolError('FRAME_UNEXPECTED', 'expected OWED_RECORDED')
  await writer.send(FrameType.COMMITTED, encodeCommitted({seq, journalMs: 0, applyMs: 0}))
}
