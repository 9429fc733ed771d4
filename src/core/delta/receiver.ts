// The receiver's side of a delta push (port 44046). It trusts a delta only for a replica it
// can vouch for: complete, same replica id, same block size and hash, not shrunk, and not
// touched since its last commit (size, mtime, ctime). Otherwise the client is told why and
// runs a full sync. A bundle goes to the journal, is checked and synced, then applied, then
// the new sequence is recorded: journal, apply, mark applied.
import fs from 'node:fs/promises'
import {constants} from 'node:fs'
import path from 'node:path'
import {FullSyncNeededError, ProtocolError, ReplicaFullError, VerifyError} from '../errors.js'
import {blockHasher} from '../hash/block-hash.js'
import {digestData, digestZero} from '../protocol/bundle-digest.js'
import {FrameType, PROTOCOL_VERSION} from '../protocol/frame.js'
import type {FrameSource} from '../protocol/frame-reader.js'
import {helloOkCodec} from '../compress/decompress-source.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import {
  decodeBundleBegin,
  decodeBundleEnd,
  decodeData,
  decodeRange,
  encodeCommitted,
  encodeHelloOk,
  HelloFlag,
  ReplicaStateKind,
  type Hello,
} from '../protocol/messages.js'
import {abandonJournal, applyJournal, commitState, recoverJournal} from './apply.js'
import {EntryKind, ENTRY_HEADER_SIZE, JOURNAL_HEADER_SIZE, JOURNAL_TRAILER_SIZE, journalPathFor, JournalWriter} from './journal.js'
import {chainMatches, enforceFence, replicaFence} from '../receiver/replica-fence.js'
import {checkDeviceHolds, openReplicaDevice, replicaExtent} from '../receiver/replica-device.js'
import {readReplicaState, type ReplicaState} from '../receiver/replica-state.js'
import {afterCommit, beginCapture} from '../points/commit-points.js'
import type {PreImageCapture} from '../points/capture.js'
import {policyOf} from '../points/prune.js'
import type {SessionLog} from '../receiver/session-log.js'
import {heldJournalPathFor, settleHeld} from '../group/held-journal.js'
import {groupCrashPoint, holdForGroup} from '../group/receiver-hold.js'
import {pruneGroupRecordsQuietly} from '../group/prune-records.js'

/** Why a delta cannot be trusted for this replica, or null when it can. */
export async function deltaDoubt(
  hello: Hello,
  state: ReplicaState | undefined,
  stateError: string | undefined,
  replica: fs.FileHandle | undefined,
): Promise<string | null> {
  if (stateError) return `the replica's state file is unusable (${stateError})`
  if (!replica || !state) return 'the replica has never been fully synced here'
  if (!state.complete) return 'the replica is marked incomplete (a full sync did not finish)'
  if (state.doubt) return state.doubt
  if (state.replicaId !== hello.replicaId.toString('hex')) return 'the replica belongs to another source (replica id differs)'
  if (state.blockSize !== hello.blockSize || state.hashAlgo !== hello.hashAlgo) return 'the block size or hash algorithm changed'
  if (!chainMatches(hello, state)) return "the commit chain differs: this disk's record is not the one that last wrote the replica (a restored or copied .psf?)"
  if (hello.diskSize < state.diskSize) return `the source disk shrank (${hello.diskSize} < ${state.diskSize} bytes)`
  const st = await replica.stat({bigint: true})
  if (Number(st.size) !== state.size || st.mtimeNs.toString() !== state.mtimeNs || st.ctimeNs.toString() !== state.ctimeNs) {
    return 'the replica was modified outside vdrep since its last commit (size, mtime or ctime changed)'
  }
  return null
}

export async function runDeltaSession(
  hello: Hello,
  replicaPath: string,
  reader: FrameSource,
  writer: FrameWriter,
  log: SessionLog,
  root = path.dirname(replicaPath),
): Promise<void> {
  // A group member's held bundle left by an earlier group push is applied or dropped first (its group record decides).
  await settleHeld(root, replicaPath, (line) => log(line, `push ${replicaPath}`))
  const recovered = await recoverJournal(replicaPath, (line) => log(line, `push ${replicaPath}`))
  if (recovered !== 'none') log(`${replicaPath}: journal ${recovered} before the push`)
  const {state, error} = await readReplicaState(replicaPath)
  let fh: fs.FileHandle | undefined
  try {
    const device = (await fs.lstat(replicaPath).catch(() => undefined))?.isBlockDevice()
    fh = device ? await openReplicaDevice(replicaPath) : await fs.open(replicaPath, constants.O_RDWR | constants.O_NOFOLLOW)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  try {
    if (!error) {
      const fence = replicaFence(hello, state, fh, fh ? await fh.stat({bigint: true}) : undefined)
      // Refused here, not by a fallback: the user's flag turns it into the full sync they chose.
      enforceFence(hello, fence, (text) => log(text, `push ${replicaPath}`))
      if (fence) throw new FullSyncNeededError(fence.reason)
    }
    const doubt = await deltaDoubt(hello, state, error?.message, fh)
    if (doubt) throw new FullSyncNeededError(doubt)
    const replica = fh as fs.FileHandle
    let current = state as ReplicaState
    await writer.send(
      FrameType.HELLO_OK,
      encodeHelloOk({
        version: PROTOCOL_VERSION,
        state: ReplicaStateKind.COMPLETE,
        replicaSize: current.size,
        resumeBlock: 0,
        replicaId: Buffer.from(current.replicaId, 'hex'),
        generation: current.generation,
        lastSeq: current.lastSeq,
        ...helloOkCodec(hello),
      }),
    )
    const first = await reader.next()
    if (!first) return // the client only wanted to look (nothing to push, or it falls back)
    if (first.type !== FrameType.BUNDLE_BEGIN) throw new ProtocolError('FRAME_UNEXPECTED', `expected BUNDLE_BEGIN, got frame type ${first.type}`)
    const begin = decodeBundleBegin(first.payload)
    if (begin.seq !== current.lastSeq + 1)
      throw new ProtocolError('SEQUENCE_MISMATCH', `bundle sequence ${begin.seq}, the replica expects ${current.lastSeq + 1}`)
    if (begin.diskSize !== hello.diskSize)
      throw new ProtocolError('DISK_SIZE_MISMATCH', `bundle disk size ${begin.diskSize} differs from the hello's ${hello.diskSize}`)
    const blockCount = Math.ceil(hello.diskSize / hello.blockSize)
    if (begin.blockCount > blockCount) throw new ProtocolError('BUNDLE_TOO_LARGE', `bundle of ${begin.blockCount} blocks for a disk of ${blockCount}`)
    // A device replica holds the disk or is refused before the journal; it takes no room to grow.
    const extent = await replicaExtent(replica)
    checkDeviceHolds(replicaPath, extent, hello.diskSize)
    await checkRoom(replicaPath, begin.blockCount, hello.blockSize, extent.device ? 0 : Math.max(0, hello.diskSize - current.size), !policyOf(current).off)
    // A group member's bundle is held under another name until its group commits (doc/group-commit.md).
    const group = (hello.flags & HelloFlag.GROUP) !== 0
    let journalPath = group ? heldJournalPathFor(replicaPath) : journalPathFor(replicaPath)
    const journalHeader = {blockSize: hello.blockSize, seq: begin.seq, diskSize: hello.diskSize, replicaId: hello.replicaId, hashAlgo: hello.hashAlgo}
    const journal = await JournalWriter.create(journalPath, journalHeader)
    let sealed = false
    const journalStart = performance.now()
    // The pre-images of this commit are read from the replica while the bundle arrives: the
    // restore point it leaves is durable, and in place, before the apply's first write.
    let capture: PreImageCapture | undefined
    try {
      ;({state: current, capture} = await beginCapture(replicaPath, replica, current, begin.seq, hello.diskSize))
      await receiveBundle(hello, begin.seq, begin.blockCount, blockCount, reader, journal, capture)
      sealed = true
    } finally {
      await journal.close()
      if (!sealed) {
        await fs.rm(journalPath, {force: true})
        await capture?.abort()
      }
    }
    let groupName: string | null = null
    if (group) {
      groupName = await holdForGroup({root, replica: replicaPath, seq: begin.seq, replicaId: hello.replicaId}, reader, writer, (line) =>
        log(line, `push ${replicaPath}`),
      )
      if (groupName === null) return
      journalPath = journalPathFor(replicaPath)
    }
    const applyStart = performance.now()
    let applied: {seq: number; diskSize: number; blocks: number}
    try {
      applied = await applyJournal(journalPath, replica, {header: journalHeader, entries: journal.entries})
    } catch (err) {
      if (err instanceof VerifyError) await abandonJournal(replicaPath, current, true)
      throw err
    }
    const {seq, diskSize, blocks} = applied
    // A final push (the source's VM stopped: a planned failover) says so in the commit; any later commit drops it.
    const final = hello.flags & HelloFlag.FINAL ? {seq, ms: Date.now()} : undefined
    const committed = await commitState(replicaPath, replica, current, seq, diskSize, {
      commit: hello.nextCommit.toString('hex'),
      prevCommit: current.commit,
      final,
    })
    log(`sequence ${seq} committed, ${blocks} blocks`, `push ${replicaPath}`, {seq})
    if (group) groupCrashPoint('after-first-apply')
    // The state file is the commit point: answer now, then drop the journal (unlinking 40 MB of
    // it took ~20 ms that the client waited for). A journal left by a failed or interrupted
    // removal names the sequence the state already records, so recovery only removes it; the
    // replica stays locked until it is gone. A client gone before the answer (killed, its link
    // cut) does not skip the removal: the commit stands either way.
    try {
      await writer.send(FrameType.COMMITTED, encodeCommitted({seq, journalMs: applyStart - journalStart, applyMs: performance.now() - applyStart}))
    } finally {
      await fs.rm(journalPath, {force: true}).catch((err: Error) => log(`${journalPath}: not removed after the commit (recovery removes it): ${err.message}`))
      await afterCommit(replicaPath, committed, (line) => log(line, `push ${replicaPath}`))
      // After this member's retention: the group's records that no longer restore go (each member tries; the last sees all).
      if (groupName !== null) await pruneGroupRecordsQuietly(root, groupName, (line) => log(line, `push ${replicaPath}`))
    }
  } finally {
    await fh?.close()
  }
}

/** Read DATA / ZERO_RUN frames into the journal until BUNDLE_END, checking every one. */
async function receiveBundle(
  hello: Hello,
  seq: number,
  announced: number,
  blockCount: number,
  reader: FrameSource,
  journal: JournalWriter,
  capture: PreImageCapture | undefined,
): Promise<void> {
  const hasher = blockHasher(hello.hashAlgo, hello.replicaId)
  const digest = hasher.createStream()
  let nextAllowed = 0
  let blocks = 0
  for (;;) {
    const frame = await reader.next()
    if (!frame) throw new ProtocolError('UNEXPECTED_EOF', 'the client closed the connection in the middle of a bundle; nothing was applied')
    if (frame.type === FrameType.DATA) {
      const {block, hash, data} = decodeData(frame.payload, frame.body)
      if (block < nextAllowed || block >= blockCount) throw new ProtocolError('BLOCK_OUT_OF_RANGE', `bundle block ${block} is out of order or beyond the disk`)
      const len = Math.min(hello.blockSize, hello.diskSize - block * hello.blockSize)
      if (data.length !== len) throw new ProtocolError('BLOCK_BAD_LENGTH', `bundle block ${block} has ${data.length} bytes, expected ${len}`)
      if (!hasher.hash(data).equals(hash)) throw new ProtocolError('BLOCK_BAD_HASH', `bundle block ${block} does not match its hash`)
      await journal.append({kind: EntryKind.DATA, block, hash}, data, frame.release)
      await capture?.add(block, 1)
      digestData(digest, block, hash)
      nextAllowed = block + 1
      blocks++
    } else if (frame.type === FrameType.ZERO_RUN) {
      const {start, count} = decodeRange(frame.payload, 'ZERO_RUN')
      if (count === 0 || start < nextAllowed || start + count > blockCount)
        throw new ProtocolError('BLOCK_OUT_OF_RANGE', `bundle zero run ${start}+${count} is out of order or beyond the disk`)
      await journal.append({kind: EntryKind.ZERO, block: start, count})
      await capture?.add(start, count)
      digestZero(digest, start, count)
      nextAllowed = start + count
      blocks += count
    } else if (frame.type === FrameType.BUNDLE_END) {
      const end = decodeBundleEnd(frame.payload)
      if (blocks !== announced || end.blockCount !== blocks || end.seq !== seq) {
        throw new ProtocolError(
          'BUNDLE_INCOMPLETE',
          `bundle ended with ${blocks} blocks; the client said ${end.blockCount} for sequence ${end.seq} (BUNDLE_BEGIN announced ${announced} for sequence ${seq}); nothing was applied`,
        )
      }
      if (!digest.digest().equals(end.digest))
        throw new ProtocolError('BUNDLE_DIGEST', 'the bundle digest does not match what was received; nothing was applied')
      // The record is put in place as soon as it is synced, beside the journal's own sync: a
      // record whose journal never completed is only a stale pre-image of an untouched replica,
      // removed by the next capture (points/commit-points.ts).
      await Promise.all([journal.seal(end.digest), capture?.seal().then(() => capture.publish())])
      return
    } else throw new ProtocolError('FRAME_UNEXPECTED', `unexpected frame type ${frame.type} inside a bundle`)
    if (blocks > announced) throw new ProtocolError('BUNDLE_TOO_LARGE', `bundle has more blocks than the ${announced} announced`)
  }
}

/** Refuse a bundle whose journal and writes would not fit, before writing any of it. */
async function checkRoom(replicaPath: string, blocks: number, blockSize: number, growth: number, points: boolean): Promise<void> {
  // With restore points, the pre-images take up to as much again as the bundle's blocks.
  const need = JOURNAL_HEADER_SIZE + JOURNAL_TRAILER_SIZE + blocks * (blockSize + ENTRY_HEADER_SIZE) + growth + (points ? blocks * blockSize : 0)
  const st = await fs.statfs(path.dirname(replicaPath))
  const free = st.bavail * st.bsize
  if (need > free)
    throw new ReplicaFullError(`the replica filesystem has ${free} bytes free; this bundle needs up to ${need}`, {hint: 'free space on the replica host'})
}
