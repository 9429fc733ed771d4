// Apply a sealed journal to the replica (idempotent), and recover after a crash: a complete
// journal for the next sequence is replayed, anything else is discarded.
import fs from 'node:fs/promises'
import {constants, type BigIntStats} from 'node:fs'
import {StateError, VerifyError} from '../errors.js'
import {blockHasher} from '../hash/block-hash.js'
import {zeroRange} from '../native/holes.js'
import {checkDeviceHolds, replicaExtent} from '../receiver/replica-device.js'
import {EntryKind, JOURNAL_SUFFIX, journalPathFor, readJournal, type JournalHeader, type JournalIndexEntry} from './journal.js'
import {writevAll} from '../util/writev-all.js'
import {readReplicaState, writeReplicaState, type ReplicaState} from '../receiver/replica-state.js'
import {preImagesForReplay} from '../points/commit-points.js'

/** Journal bytes read (and replica writes issued) at a time while applying. */
const SPAN_BYTES = 8 << 20

interface Span {
  /** Index of the span's first and one past its last entry (all data entries). */
  from: number
  to: number
  start: number
  end: number
}

const dataLength = (header: JournalHeader, block: number) => Math.min(header.blockSize, header.diskSize - block * header.blockSize)

/** Consecutive data entries whose bytes (with the entry headers between them) fit in SPAN_BYTES. */
function spanAt(header: JournalHeader, entries: JournalIndexEntry[], from: number): Span {
  const start = entries[from].dataOffset
  let to = from
  let end = start
  while (to < entries.length && entries[to].entry.kind === EntryKind.DATA) {
    const e = entries[to]
    const eEnd = e.dataOffset + dataLength(header, e.entry.block)
    if (eEnd - start > SPAN_BYTES && to > from) break
    end = eEnd
    to++
  }
  return {from, to, start, end}
}

async function readSpan(jh: fs.FileHandle, buf: Buffer, span: Span): Promise<Buffer> {
  const len = span.end - span.start
  let got = 0
  while (got < len) {
    const {bytesRead} = await jh.read(buf, got, len - got, span.start + got)
    if (bytesRead === 0) throw new VerifyError(`the journal ends early at offset ${span.start + got}; it is not applied`)
    got += bytesRead
  }
  return buf.subarray(0, len)
}

function checkSpan(header: JournalHeader, entries: JournalIndexEntry[], span: Span, data: Buffer, hasher: ReturnType<typeof blockHasher>): void {
  for (let i = span.from; i < span.to; i++) {
    const {entry, dataOffset} = entries[i]
    if (entry.kind !== EntryKind.DATA) continue
    const at = dataOffset - span.start
    if (!hasher.hash(data.subarray(at, at + dataLength(header, entry.block))).equals(entry.hash)) {
      throw new VerifyError(`journal block ${entry.block} does not match its hash; the journal is not applied`)
    }
  }
}

/** Every data entry of a journal read back and checked against its hash, before anything is applied. */
async function verifyJournal(jh: fs.FileHandle, header: JournalHeader, entries: JournalIndexEntry[], buf: Buffer): Promise<void> {
  const hasher = blockHasher(header.hashAlgo, header.replicaId)
  for (let i = 0; i < entries.length;) {
    if (entries[i].entry.kind !== EntryKind.DATA) {
      i++
      continue
    }
    const span = spanAt(header, entries, i)
    checkSpan(header, entries, span, await readSpan(jh, buf, span), hasher)
    i = span.to
  }
}

/**
 * Write every entry of the journal into the replica, each block checked against its hash
 * before it is written; then sync. A span of the journal is read at once and its blocks are
 * written together (contiguous ones in one writev), so scattered blocks cost no round trip
 * each. `known` is the entry list of the session that wrote the journal; without it (crash
 * recovery) the journal is parsed and every block verified before the first write.
 */
export async function applyJournal(
  journalPath: string,
  replica: fs.FileHandle,
  known?: {header: JournalHeader; entries: JournalIndexEntry[]},
): Promise<{seq: number; diskSize: number; blocks: number}> {
  const {header, entries} = known ?? (await readJournal(journalPath))
  const hasher = blockHasher(header.hashAlgo, header.replicaId)
  const jh = await fs.open(journalPath, 'r')
  try {
    const buf = Buffer.allocUnsafe(SPAN_BYTES + header.blockSize)
    if (!known) await verifyJournal(jh, header, entries, buf)
    // A file grows to the disk's size; a block device is never truncated: one too small is refused.
    const extent = await replicaExtent(replica)
    checkDeviceHolds(journalPath.slice(0, -JOURNAL_SUFFIX.length), extent, header.diskSize)
    if (!extent.device && extent.size < header.diskSize) await replica.truncate(header.diskSize)
    let blocks = 0
    for (let i = 0; i < entries.length;) {
      const {entry} = entries[i]
      if (entry.kind === EntryKind.ZERO) {
        const pos = entry.block * header.blockSize
        await zeroRange(replica.fd, pos, Math.min(entry.count * header.blockSize, header.diskSize - pos))
        blocks += entry.count
        i++
        continue
      }
      const span = spanAt(header, entries, i)
      const data = await readSpan(jh, buf, span)
      checkSpan(header, entries, span, data, hasher)
      const writes: Array<Promise<number>> = []
      for (let k = span.from; k < span.to;) {
        // Blocks that follow each other on the replica go in one writev.
        const parts: Buffer[] = []
        const firstBlock = entries[k].entry.block
        let b = firstBlock
        while (k < span.to && entries[k].entry.block === b) {
          const at = entries[k].dataOffset - span.start
          parts.push(data.subarray(at, at + dataLength(header, b)))
          b++
          k++
        }
        writes.push(writevAll(replica, parts, firstBlock * header.blockSize))
        blocks += parts.length
      }
      await Promise.all(writes)
      i = span.to
    }
    // VDREP_TEST_SLOW_APPLY_MS: tests only, an apply that takes this much longer (a large bundle
    // on a slow disk), to show that the receiver's keepalives keep a client's --timeout from firing.
    const slow = Number(process.env.VDREP_TEST_SLOW_APPLY_MS ?? 0)
    if (slow > 0) await new Promise((r) => setTimeout(r, slow))
    // VDREP_TEST_PLANT_SKIP_APPLY_SYNC=1 is a deliberately broken build for the power-cut
    // recorder's own test (test/integration/powercut.test.ts): without this sync the state can
    // record the new point before its blocks are on disk, and the check must say so.
    if (process.env.VDREP_TEST_PLANT_SKIP_APPLY_SYNC !== '1') await replica.datasync()
    return {seq: header.seq, diskSize: header.diskSize, blocks}
  } finally {
    await jh.close()
  }
}

/** The state after a commit: the new sequence and the replica's stat, so outside changes show. */
export async function commitState(
  replicaPath: string,
  replica: fs.FileHandle,
  prev: ReplicaState,
  seq: number,
  diskSize: number,
  extra: Partial<ReplicaState> = {},
): Promise<ReplicaState> {
  const st = await replica.stat({bigint: true})
  const next: ReplicaState = {
    ...prev,
    lastSeq: seq,
    diskSize,
    size: Number(st.size),
    mtimeNs: st.mtimeNs.toString(),
    ctimeNs: st.ctimeNs.toString(),
    updatedMs: Date.now(),
    commitMs: Date.now(),
    ...extra,
  }
  await writeReplicaState(replicaPath, next)
  return next
}

/** However fast or slow an apply is, it ends within this of its journal's last write (plus size / APPLY_MIN_RATE). */
const APPLY_WINDOW_NS = 60_000_000_000n
/** Bytes per second an apply is assumed to reach at the least (for the window above). */
const APPLY_MIN_RATE = 10_000_000n

/**
 * Whether the replica was written after an interrupted apply could have written it: a replay
 * records the replica's stat as committed, which would hide such a write (a test boot of the
 * replica while the receiver was down) from every later push. Its stat unchanged since the
 * last commit: the apply never started. Changed: the apply's own writes land within a window
 * after the journal's last write (it is sealed just before the apply); a size, mtime or ctime
 * later than that is someone else's. (A write by someone else inside that window, seconds
 * after the crash, is not told apart.)
 */
function writtenAfterApply(replica: BigIntStats, state: ReplicaState, journal: BigIntStats): boolean {
  if (unchangedSinceCommit(replica, state)) return false
  const end = journal.mtimeNs + APPLY_WINDOW_NS + (journal.size * 1_000_000_000n) / APPLY_MIN_RATE
  return replica.mtimeNs > end || replica.ctimeNs > end
}

function unchangedSinceCommit(replica: BigIntStats, state: ReplicaState): boolean {
  return Number(replica.size) === state.size && replica.mtimeNs.toString() === state.mtimeNs && replica.ctimeNs.toString() === state.ctimeNs
}

/**
 * A complete journal that fails its check while it is applied (it reads back damaged): the
 * replica may hold part of it, so it is marked incomplete, and the next push falls back to a
 * full sync that repairs it; the journal is dropped, or every later push would fail the same
 * way. `touched` false (the replica is as committed: nothing of it was written) keeps it complete.
 */
export async function abandonJournal(replicaPath: string, state: ReplicaState, touched: boolean): Promise<void> {
  if (touched) await writeReplicaState(replicaPath, {...state, complete: false, resumeBlock: 0, updatedMs: Date.now()})
  await fs.rm(journalPathFor(replicaPath), {force: true})
}

/**
 * Bring a replica to a consistent point after a crash. Returns what was done, for the log.
 * Safe to call when there is no journal.
 */
export async function recoverJournal(
  replicaPath: string,
  log: (line: string) => void = () => {},
): Promise<'none' | 'replayed' | 'discarded' | 'already-applied'> {
  const jp = journalPathFor(replicaPath)
  try {
    await fs.access(jp)
  } catch {
    return 'none'
  }
  const {state} = await readReplicaState(replicaPath)
  let outcome: 'replayed' | 'discarded' | 'already-applied' = 'discarded'
  try {
    const {header, entries} = await readJournal(jp)
    if (state && state.complete && header.replicaId.toString('hex') === state.replicaId) {
      if (header.seq === state.lastSeq + 1) {
        const fh = await fs.open(replicaPath, constants.O_RDWR | constants.O_NOFOLLOW)
        try {
          const before = await fh.stat({bigint: true})
          const foreign = writtenAfterApply(before, state, await fs.stat(jp, {bigint: true}))
          // The pre-images of this commit: those captured before the crash, never ones read now from a half-applied replica.
          const withPoints = await preImagesForReplay(replicaPath, fh, state, header, entries, unchangedSinceCommit(before, state), log)
          let applied: {seq: number; diskSize: number}
          try {
            applied = await applyJournal(jp, fh)
          } catch (err) {
            if (!(err instanceof VerifyError)) throw err
            // Checked before its first write: the replica holds only what an interrupted live
            // apply wrote, if anything.
            await abandonJournal(replicaPath, state, !unchangedSinceCommit(before, state))
            return 'discarded'
          }
          const {seq, diskSize} = applied
          // One write: the new stat is never recorded as trusted without the doubt beside it.
          const doubt = `a push's apply was interrupted (sequence ${seq}) and the replica changed before it was replayed; only a full sync can tell whether something else wrote it`
          // Written by something else while the receiver was down: it moved on (REPLICA_DIVERGED), not only doubt.
          await commitState(replicaPath, fh, withPoints, seq, diskSize, foreign ? {doubt, diverged: true} : {})
        } finally {
          await fh.close()
        }
        outcome = 'replayed'
      } else if (header.seq === state.lastSeq) outcome = 'already-applied'
    }
  } catch (err) {
    if (!(err instanceof StateError)) throw err
    // incomplete or corrupt: the replica was never touched by it
  }
  await fs.rm(jp, {force: true})
  return outcome
}
