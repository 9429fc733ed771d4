// The receiver's side of a compare-only full sync (HELLO flag NO_WRITE: `vdrep verify`,
// `vdrep fullsync --dry-run`). The same conversation as a full sync (HELLO_OK, the scan's
// BLOCK_STATUS stream under the same lead rule, CHECKPOINT/ACK, DONE, VERIFY_RESULT) over a
// replica opened read-only and never created: nothing is written on this host (no replica
// byte, no state file, no journal removed or replayed, no restore point dropped). DATA and
// ZERO_RUN are refused. The digest is the replica's as it is, so VERIFY_RESULT says whether it
// equals the client's disk.
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import {DiskIoError, ProtocolError, StateError, UsageError} from '../errors.js'
import {decodeJournalHeader, JOURNAL_HEADER_SIZE, journalPathFor} from '../delta/journal.js'
import {blockHasher} from '../hash/block-hash.js'
import type {ReadableDisk} from '../disk/read-hash.js'
import {FrameType, PROTOCOL_VERSION} from '../protocol/frame.js'
import type {FrameSource} from '../protocol/frame-reader.js'
import {helloOkCodec} from '../compress/decompress-source.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import {decodeDone, decodeU64, encodeHelloOk, encodeU64, encodeVerifyResult, HelloFlag, ReplicaStateKind, type Hello} from '../protocol/messages.js'
import {enforceFence, replicaFence} from '../receiver/replica-fence.js'
import {checkDeviceHolds, replicaExtent, type ReplicaExtent} from '../receiver/replica-device.js'
import {readReplicaState, type ReplicaState} from '../receiver/replica-state.js'
import type {SessionLog} from '../receiver/session-log.js'
import {ReplicaProof} from './receiver-proof.js'
import {ReplicaScan} from './receiver-scan.js'

/** The replica as found, opened read-only; `fh` undefined when there is no file. */
interface ReadOnlyReplica {
  fh: fs.FileHandle | undefined
  extent: ReplicaExtent
  state: ReplicaState | undefined
}

async function openReadOnly(path: string): Promise<ReadOnlyReplica> {
  let fh: fs.FileHandle
  try {
    fh = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return {fh: undefined, extent: {size: 0, device: false}, state: undefined}
    if (code === 'ELOOP') throw new UsageError('PATH_OUTSIDE_ROOT', `refusing replica path ${path}: it is a symlink`)
    throw new DiskIoError(`cannot open the replica ${path}: ${(err as Error).message}`, {cause: err})
  }
  try {
    const extent = await replicaExtent(fh)
    const {state} = await readReplicaState(path)
    return {fh, extent, state}
  } catch (err) {
    await fh.close()
    throw err
  }
}

/**
 * An interrupted push's journal for the next sequence: the replica may be half-applied until
 * it is replayed (by the next push, or `vdrep serve` at its start), which a compare must not do.
 * Refused rather than compared: a torn replica would read as changed behind vdrep's back.
 */
async function checkNoPendingJournal(replicaPath: string, state: ReplicaState | undefined): Promise<void> {
  if (!state) return
  const head = Buffer.alloc(JOURNAL_HEADER_SIZE)
  let fh: fs.FileHandle
  try {
    fh = await fs.open(journalPathFor(replicaPath), constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch {
    return // none (or not ours to read): nothing pending
  }
  try {
    const {bytesRead} = await fh.read(head, 0, head.length, 0)
    const seq = decodeJournalHeader(head.subarray(0, bytesRead)).seq
    if (seq !== state.lastSeq + 1) return
    throw new StateError(
      'REPLICA_JOURNAL_PENDING',
      `the replica ${replicaPath} has the journal of an interrupted push (sequence ${seq}) that is not replayed yet`,
      {
        hint: 'the next `vdrep push` (or `vdrep serve` at its start) replays it; verify after that',
      },
    )
  } catch (err) {
    if (err instanceof StateError) throw err
    // A damaged journal is discarded, never replayed: the replica is as its state says.
  } finally {
    await fh.close()
  }
}

/** Reads of the replica as the full sync would see it after sizing it: zeros past its end. */
function readableOf(fh: fs.FileHandle, extent: ReplicaExtent, diskSize: number): ReadableDisk {
  const readAt = async (buf: Buffer, len: number, pos: number): Promise<Buffer> => {
    let done = 0
    while (done < len) {
      const {bytesRead} = await fh.read(buf, done, len - done, pos + done)
      if (bytesRead === 0) {
        buf.fill(0, done, len)
        break
      }
      done += bytesRead
    }
    return buf.subarray(0, len)
  }
  // A file shorter than the disk is read through readAt (zeros past its end); mapped or direct
  // reads past the end of a file would fault or come up short.
  return {fd: fh.fd, readAt, directReads: extent.device || extent.size >= diskSize}
}

export async function runCompareSession(hello: Hello, replicaPath: string, reader: FrameSource, writer: FrameWriter, log: SessionLog): Promise<void> {
  const replica = await openReadOnly(replicaPath)
  try {
    const {fh, extent, state} = replica
    const subject = `compare ${replicaPath}`
    // The full sync's refusals, so a dry run says what the real run would: another source's
    // replica, one that moved on (the fence flags let it compare anyway), a larger one.
    // The open-by-another probe needs a write lock and is left out: nothing is written here.
    enforceFence(hello, replicaFence(hello, state, undefined, fh ? await fh.stat({bigint: true}) : undefined), (t) => log(t, subject))
    checkDeviceHolds(replicaPath, extent, hello.diskSize)
    await checkNoPendingJournal(replicaPath, state)
    if (!extent.device && extent.size > hello.diskSize && !(hello.flags & HelloFlag.TRUNCATE_REPLICA)) {
      throw new UsageError('REPLICA_LARGER', `the replica ${replicaPath} (${extent.size} bytes) is larger than the source (${hello.diskSize} bytes)`, {
        hint: 'a full sync needs --truncate-replica to cut the replica down to the source size',
      })
    }
    const sameDisk = state && !state.complete && state.replicaId === hello.replicaId.toString('hex') && state.diskSize === hello.diskSize
    await writer.send(
      FrameType.HELLO_OK,
      encodeHelloOk({
        version: PROTOCOL_VERSION,
        state: fh ? (state?.complete ? ReplicaStateKind.COMPLETE : ReplicaStateKind.INCOMPLETE) : ReplicaStateKind.MISSING,
        replicaSize: extent.size,
        resumeBlock: sameDisk ? Math.min(state.resumeBlock, Math.ceil(hello.diskSize / hello.blockSize)) : 0,
        replicaId: state ? Buffer.from(state.replicaId, 'hex') : Buffer.alloc(16),
        generation: state?.generation ?? 0,
        lastSeq: state?.lastSeq ?? 0,
        ...helloOkCodec(hello),
      }),
    )
    const absent: ReadableDisk = {
      fd: -1,
      readAt: () => Promise.reject(new Error('no replica file')),
    }
    const disk = fh ? readableOf(fh, extent, hello.diskSize) : absent
    await compare(hello, disk, fh === undefined, reader, writer)
    log('compared, nothing written', subject)
  } finally {
    await replica.fh?.close()
  }
}

/** Statuses out, checkpoints acknowledged, the replica's digest at DONE. */
async function compare(hello: Hello, disk: ReadableDisk, absent: boolean, reader: FrameSource, writer: FrameWriter): Promise<void> {
  const bs = hello.blockSize
  const blockCount = Math.ceil(hello.diskSize / bs)
  const hasher = blockHasher(hello.hashAlgo, hello.replicaId)
  const scan = new ReplicaScan(disk, hello.diskSize, bs, hasher, writer, absent)
  const proof = new ReplicaProof(disk, hello.diskSize, bs, hasher)
  let scanError: Error | undefined
  const scanning = scan.run().catch((err: Error) => {
    scanError = err
    reader.abort?.(err)
  })
  let checkpointed = 0
  try {
    for (;;) {
      if (scanError) throw scanError
      const frame = await reader.next()
      if (!frame) throw new ProtocolError('UNEXPECTED_EOF', 'the client closed the connection before the comparison was done')
      if (frame.type === FrameType.CHECKPOINT || frame.type === FrameType.DONE) {
        const done = frame.type === FrameType.DONE ? decodeDone(frame.payload) : undefined
        if (done && done.blockCount !== blockCount) throw new ProtocolError('DONE_MISMATCH', `DONE for ${done.blockCount} blocks, the disk has ${blockCount}`)
        const upto = done ? blockCount : decodeU64(frame.payload, 'CHECKPOINT')
        if (upto < checkpointed || upto > scan.sentUpto)
          throw new ProtocolError('CHECKPOINT_OUT_OF_RANGE', `checkpoint at block ${upto} is outside ${checkpointed}..${scan.sentUpto}`)
        checkpointed = upto
        scan.checkpointed(upto)
        await proof.fold(upto, scan.scanned)
        scan.forgetBelow(upto)
        await writer.send(FrameType.CHECKPOINT_ACK, encodeU64(upto))
        if (!done) continue
        const digest = proof.digest()
        await writer.send(FrameType.VERIFY_RESULT, encodeVerifyResult({ok: digest.equals(done.digest), digest}))
        return
      }
      // DATA, ZERO_RUN or anything else: this session writes nothing.
      throw new ProtocolError('FRAME_UNEXPECTED', `frame type ${frame.type} in a compare-only session (NO_WRITE): nothing is written on the replica host`)
    }
  } finally {
    scan.stop()
    await scanning
  }
}
