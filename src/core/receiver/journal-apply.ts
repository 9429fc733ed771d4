// Apply a sealed journal to the replica (idempotent), and recover after a crash: a complete
// journal for the next sequence is replayed, anything else is discarded.
import fs from 'node:fs/promises'
import {constants} from 'node:fs'
import {StateError, VerifyError} from '../errors.js'
import {blockHasher} from '../hash/block-hash.js'
import {zeroRange} from '../disk/native.js'
import {EntryKind, journalPathFor, readJournal} from './journal.js'
import {readReplicaState, writeReplicaState, type ReplicaState} from './replica-state.js'

/** Write every entry of the journal into the replica, verifying each block's hash; then sync. */
export async function applyJournal(journalPath: string, replica: fs.FileHandle): Promise<{seq: number; diskSize: number; blocks: number}> {
  const {header, entries} = await readJournal(journalPath)
  const hasher = blockHasher(header.hashAlgo)
  const jh = await fs.open(journalPath, 'r')
  try {
    const st = await replica.stat()
    if (st.size < header.diskSize) await replica.truncate(header.diskSize)
    const buf = Buffer.allocUnsafe(header.blockSize)
    let blocks = 0
    for (const {entry, dataOffset} of entries) {
      const pos = entry.block * header.blockSize
      if (entry.kind === EntryKind.ZERO) {
        await zeroRange(replica.fd, pos, Math.min(entry.count * header.blockSize, header.diskSize - pos))
        blocks += entry.count
        continue
      }
      const len = Math.min(header.blockSize, header.diskSize - pos)
      const {bytesRead} = await jh.read(buf, 0, len, dataOffset)
      const data = buf.subarray(0, len)
      if (bytesRead !== len || !hasher.hash(data).equals(entry.hash)) throw new VerifyError(`journal block ${entry.block} does not match its hash; the journal is not applied`)
      await replica.write(data, 0, len, pos)
      blocks++
    }
    await replica.sync()
    return {seq: header.seq, diskSize: header.diskSize, blocks}
  } finally {
    await jh.close()
  }
}

/** The state after a commit: the new sequence and the replica's stat, so outside changes show. */
export async function commitState(replicaPath: string, replica: fs.FileHandle, prev: ReplicaState, seq: number, diskSize: number): Promise<ReplicaState> {
  const st = await replica.stat({bigint: true})
  const next: ReplicaState = {...prev, lastSeq: seq, diskSize, size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ctimeNs: st.ctimeNs.toString(), updatedMs: Date.now()}
  await writeReplicaState(replicaPath, next)
  return next
}

/**
 * Bring a replica to a consistent point after a crash. Returns what was done, for the log.
 * Safe to call when there is no journal.
 */
export async function recoverJournal(replicaPath: string): Promise<'none' | 'replayed' | 'discarded' | 'already-applied'> {
  const jp = journalPathFor(replicaPath)
  try {
    await fs.access(jp)
  } catch {
    return 'none'
  }
  const {state} = await readReplicaState(replicaPath)
  let outcome: 'replayed' | 'discarded' | 'already-applied' = 'discarded'
  try {
    const {header} = await readJournal(jp)
    if (state && state.complete && header.replicaId.toString('hex') === state.replicaId) {
      if (header.seq === state.lastSeq + 1) {
        const fh = await fs.open(replicaPath, constants.O_RDWR | constants.O_NOFOLLOW)
        try {
          const {seq, diskSize} = await applyJournal(jp, fh)
          await commitState(replicaPath, fh, state, seq, diskSize)
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
