// The receiver's three moments for restore points: before a bundle is journalled (start
// capturing its pre-images), before a journal is replayed after a crash (find the pre-images
// captured before the crash, or capture them only from a replica that was not touched), and
// after a commit (retention). Order of durability for commit N, each step synced before the
// next starts: journal and undo record (both in the journal phase) -> undo record renamed into
// place -> apply to the replica -> state records N -> retention -> journal removed.
import crypto from 'node:crypto'
import path from 'node:path'
import type fs from 'node:fs/promises'
import {EntryKind, type JournalHeader, type JournalIndexEntry} from '../delta/journal.js'
import {writeReplicaState, type ReplicaState} from '../receiver/replica-state.js'
import {PreImageCapture} from './capture.js'
import {closeChain, loadChain} from './chain.js'
import {enforceRetention, policyOf} from './prune.js'
import {dropAllPoints, ensurePointsDir, listUndoNames, removeUndo, undoName} from './store.js'
import {UndoFile} from './undo-file.js'

/** The state with a chain id, written durably before the first record of a new chain exists. */
async function withChain(replica: string, state: ReplicaState): Promise<ReplicaState> {
  if (state.pointsChain) return state
  const next = {...state, pointsChain: crypto.randomBytes(16).toString('hex')}
  await writeReplicaState(replica, next)
  return next
}

/**
 * Start capturing the pre-images of commit `seq` (the replica's state is at seq - 1). Returns
 * the state to commit with (it may have gained a chain id) and the capture, or none when the
 * replica's policy is `off`. Leftovers of an earlier attempt at this commit (or beyond) go first.
 */
export async function beginCapture(
  replica: string,
  fh: fs.FileHandle,
  state: ReplicaState,
  seq: number,
  diskSize: number,
): Promise<{state: ReplicaState; capture?: PreImageCapture}> {
  if (policyOf(state).off) return {state}
  const dir = await ensurePointsDir(replica)
  const stale = (await listUndoNames(replica)).filter((u) => u.to > state.lastSeq).map((u) => u.name)
  await removeUndo(replica, stale, true)
  const s = await withChain(replica, state)
  const capture = await PreImageCapture.begin(dir, fh, {
    blockSize: s.blockSize,
    fromSeq: s.lastSeq,
    toSeq: seq,
    fromDiskSize: s.diskSize,
    toDiskSize: diskSize,
    fromMs: s.commitMs ?? s.updatedMs,
    toMs: Date.now(),
    replicaId: Buffer.from(s.replicaId, 'hex'),
    chainId: Buffer.from(s.pointsChain as string, 'hex'),
  })
  return {state: s, capture}
}

/** Feed a journal's entries to a capture (a replay's, whose entries come from the parsed journal). */
export async function captureEntries(capture: PreImageCapture, entries: JournalIndexEntry[]): Promise<void> {
  for (const {entry} of entries) await capture.add(entry.block, entry.kind === EntryKind.ZERO ? entry.count : 1)
}

/**
 * Before a replay of commit `header.seq`: its pre-images must be in place, and must be those of
 * the replica before the interrupted apply. The record captured before the crash is used when it
 * is there and sound. Without one, the apply never started (a record is in place before the
 * first write), so capturing now is right, but only if the replica is also untouched since its
 * last commit: otherwise the points cannot be vouched for, and the chain is dropped, said so.
 */
export async function preImagesForReplay(
  replica: string,
  fh: fs.FileHandle,
  state: ReplicaState,
  header: JournalHeader,
  entries: JournalIndexEntry[],
  untouched: boolean,
  log: (line: string) => void,
): Promise<ReplicaState> {
  if (policyOf(state).off) return state
  const name = undoName(state.lastSeq, header.seq)
  if (state.pointsChain) {
    try {
      const f = await UndoFile.open(path.join(await ensurePointsDir(replica), name), {from: state.lastSeq, to: header.seq})
      const ok = f.header.chainId.toString('hex') === state.pointsChain && f.header.replicaId.toString('hex') === state.replicaId
      await f.close()
      if (ok) return state
    } catch {
      // missing or unusable: decided below
    }
  }
  if (untouched) {
    const {state: s, capture} = await beginCapture(replica, fh, state, header.seq, header.diskSize)
    if (!capture) return s
    try {
      await captureEntries(capture, entries)
      await capture.seal()
      await capture.publish()
    } catch (err) {
      await capture.abort()
      throw err
    }
    return s
  }
  const chain = await loadChain(replica, state)
  const lost = chain.files.length
  await closeChain(chain)
  const next: ReplicaState = {...state, pointsChain: undefined}
  await writeReplicaState(replica, next)
  await dropAllPoints(replica)
  log(
    `${replica}: the pre-images of sequence ${header.seq} were not kept before its apply was interrupted; its ${lost} older restore point(s) cannot be vouched for and were dropped`,
  )
  return next
}

/** Retention after a commit; a failure is logged, never undoes the commit. */
export async function afterCommit(replica: string, state: ReplicaState, log: (line: string) => void): Promise<void> {
  try {
    const r = await enforceRetention(replica, state)
    if (r.dropped.length > 0) log(`${replica}: retention dropped point(s) ${r.dropped.join(', ')} (${r.merged} merge(s)); points keep ${r.bytes} bytes`)
  } catch (err) {
    log(`${replica}: retention not applied (the next commit tries again): ${(err as Error).message}`)
  }
}
