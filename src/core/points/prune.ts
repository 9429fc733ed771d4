// Retention, applied after each commit (under the replica lock, by the one writer): points
// the policy no longer keeps go. Dropping the oldest points only deletes their records (undo
// is needed only back to the oldest kept point). Dropping a point between two kept ones merges
// the records on either side into one that links the kept points directly (for each block the
// older record's pre-image wins), written and put in place before the pieces are removed,
// newest piece first, so a crash at any step leaves a chain that still reaches every kept point.
import {readReplicaState, type ReplicaState} from '../receiver/replica-state.js'
import {closeChain, loadChain, type Chain} from './chain.js'
import {buildIndex} from './overlay.js'
import {byteCap, capDrops, DEFAULT_RETENTION, parseRetention, planRetention, type PointTime} from './retention.js'
import {dropAllPoints, ensurePointsDir, removeUndo} from './store.js'
import {pinnedPoints} from './pins.js'
import type {UndoFile} from './undo-file.js'
import {UndoWriter} from './undo-writer.js'
import path from 'node:path'

export interface PruneResult {
  /** Points given up, by sequence. */
  dropped: number[]
  /** Records written by merging. */
  merged: number
  /** Bytes the kept records take now. */
  bytes: number
}

export const policyOf = (state: ReplicaState) => parseRetention(state.retention ?? DEFAULT_RETENTION)

/** Apply the replica's retention policy now. `nowMs` is the clock (tests pass their own). */
export async function enforceRetention(replica: string, state: ReplicaState, nowMs = Date.now()): Promise<PruneResult> {
  const policy = policyOf(state)
  if (policy.off) {
    const chain = await loadChain(replica, state)
    const dropped = chain.files.map((f) => f.header.fromSeq)
    await closeChain(chain)
    await dropAllPoints(replica)
    return {dropped, merged: 0, bytes: 0}
  }
  const chain = await loadChain(replica, state)
  try {
    const points: PointTime[] = [
      ...chain.files.map((f) => ({seq: f.header.fromSeq, ms: f.header.fromMs})),
      {seq: state.lastSeq, ms: state.commitMs ?? state.updatedMs},
    ]
    const pinned = await pinnedPoints(replica)
    const keep = new Set([...planRetention(points, policy, nowMs), ...pinned])
    return await keepOnly(replica, chain, keep, byteCap(policy, state.diskSize), pinned)
  } finally {
    await closeChain(chain)
  }
}

/** Keep the points in `keep` (the current one always stays), then drop the oldest until the records fit `cap` bytes. */
export async function keepOnly(replica: string, chain: Chain, keep: Set<number>, cap = Infinity, pinned = new Set<number>()): Promise<PruneResult> {
  const files = chain.files
  const seqs = [...files.map((f) => f.header.fromSeq), files.length > 0 ? files[files.length - 1].header.toSeq : -1]
  keep = new Set([...keep, seqs[seqs.length - 1]])
  const dropped = seqs.filter((s) => s >= 0 && !keep.has(s))
  const remove: string[] = [...chain.strays]
  // Records before the oldest kept point: no longer needed by anyone.
  const first = seqs.findIndex((s) => keep.has(s))
  for (let i = 0; i < first; i++) remove.push(path.basename(files[i].path))
  await removeUndo(replica, remove, true)
  // Between kept points: one record each, merged where points between them went.
  const kept: Array<{from: number; size: number; name: string}> = []
  let merged = 0
  for (let i = first; i < files.length;) {
    let j = i + 1
    while (j < files.length && !keep.has(files[j].header.fromSeq)) j++
    const group = files.slice(i, j)
    if (group.length === 1) kept.push({from: group[0].header.fromSeq, size: group[0].size, name: path.basename(group[0].path)})
    else {
      const w = await mergeRecords(replica, group)
      kept.push({from: w.header.fromSeq, size: w.size, name: path.basename(w.final)})
      // Newest piece first: what is left of the pieces never reaches the newer kept point, so the walk takes the merged record.
      await removeUndo(replica, group.map((f) => path.basename(f.path)).reverse())
      merged++
    }
    i = j
  }
  // The byte cap, on the records' real sizes: the oldest kept points go until the rest fit.
  // A pinned point (an open reader) holds the cap back until it is closed.
  const firstPinned = kept.findIndex((k) => pinned.has(k.from))
  const n = Math.min(
    capDrops(
      kept.map((k) => k.size),
      cap,
    ),
    firstPinned < 0 ? kept.length : firstPinned,
  )
  await removeUndo(
    replica,
    kept.slice(0, n).map((k) => k.name),
  )
  for (const k of kept.slice(0, n)) dropped.push(k.from)
  return {dropped: dropped.sort((a, b) => a - b), merged, bytes: kept.slice(n).reduce((a, k) => a + k.size, 0)}
}

/** One record linking the first record's `from` to the last one's `to`: for each block, the oldest pre-image. */
async function mergeRecords(replica: string, group: UndoFile[]): Promise<UndoWriter> {
  const first = group[0].header
  const last = group[group.length - 1].header
  const w = await UndoWriter.create(await ensurePointsDir(replica), {
    ...first,
    toSeq: last.toSeq,
    toDiskSize: last.toDiskSize,
    toMs: last.toMs,
  })
  try {
    const bs = first.blockSize
    let cached: {file: number; extent: number; data: Buffer} | undefined
    for (const seg of buildIndex(group)) {
      if (seg.zero) {
        w.addZero(seg.block, seg.count)
        continue
      }
      if (!cached || cached.file !== seg.file || cached.extent !== seg.extent)
        cached = {file: seg.file, extent: seg.extent, data: await group[seg.file].readExtent(seg.extent)}
      w.addData(seg.block, cached.data.subarray(seg.skip * bs, (seg.skip + seg.count) * bs))
      await w.maybeFlush()
    }
    await w.seal()
    await w.publish()
    return w
  } catch (err) {
    await w.abort()
    throw err
  }
}

/** The state as it is now, then retention: for `vdrep points --retention` (the caller holds the replica lock). */
export async function enforceRetentionNow(replica: string, nowMs = Date.now()): Promise<PruneResult | undefined> {
  const {state} = await readReplicaState(replica)
  return state?.complete ? enforceRetention(replica, state, nowMs) : undefined
}
