// The next sync after a crash state, run for real (issue 22: "a push --no-fallback then ends
// cmp-equal"). Destructive: the state is written in place of the recorded folders (the `.psf`
// names those paths and binds to the disk's inode, so it cannot move), so it runs once per
// recording, on one state, after every state of that recording was checked.
//  - receiver: the replica's folder becomes the state and is recovered as `vdrep serve` does;
//    the source's record is the one the client had at that point (the push that was cut never
//    heard COMMITTED when the state is the previous point: its record before the push; at the
//    new point, its record after). `vdrep push --no-fallback` must exit 0 and leave the replica
//    equal to the disk.
//  - tracker: the disk and its `.psf` become the state (in place: the disk keeps its inode);
//    `vdrep track` restarts on them, and `vdrep push --no-fallback` through it must exit 0 and
//    leave the replica equal to the disk as the cut left it.
import fs from 'node:fs/promises'
import path from 'node:path'
import {recoverJournal} from '../../../src/core/delta/apply.js'
import {readReplicaState, writeReplicaState} from '../../../src/core/receiver/replica-state.js'
import {vdrep} from '../cli.js'
import {startTracker} from '../../core/tracker/tracker-helpers.js'
import type {CrashStateRef} from './crash-states.js'
import {crashState} from './fs-model.js'
import type {ReceiverScenario} from './receiver-component.js'
import type {SourceScenario} from './source-component.js'

/** Write a state's files in place under a root: files written over (same inode where they exist), the rest removed. */
async function writeInPlace(files: Map<string, Buffer | null>, root: string, keep: (p: string) => boolean = () => false): Promise<void> {
  for (const e of await fs.readdir(root, {recursive: true, withFileTypes: true})) {
    const p = path.join(e.parentPath, e.name)
    if (!files.has(p) && !keep(p)) await fs.rm(p, {recursive: true, force: true})
  }
  for (const [p, data] of [...files].sort(([a], [b]) => a.length - b.length)) {
    if (data === null) await fs.mkdir(p, {recursive: true, mode: 0o700})
    else await fs.writeFile(p, data, {mode: 0o600})
  }
}

export async function nextPushAfterReceiverState(sc: ReceiverScenario, s: CrashStateRef, outcome: string): Promise<string | undefined> {
  const files = crashState(sc.timeline, s.point, s.choice)
  await writeInPlace(files, sc.realRoot, (p) => p.endsWith('.lock'))
  const replica = path.join(sc.realRoot, path.basename(sc.replica))
  await recoverJournal(replica)
  // The one thing a rebuilt file cannot keep is its stamp (mtime, ctime), which the fence would
  // read as a write behind vdrep's back: the state is given the copy's, as a real cut keeps it.
  const {state} = await readReplicaState(replica)
  if (!state) return `${s.label}: no state after recovery`
  const st = await fs.stat(replica, {bigint: true})
  await writeReplicaState(replica, {...state, size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ctimeNs: st.ctimeNs.toString()})
  await fs.writeFile(`${sc.disk}.psf`, outcome === 'new point' ? sc.psfAfter : sc.psfBefore)
  const r = await vdrep(['push', sc.disk, '--no-fallback'])
  if (r.code !== 0) return `${s.label} (${outcome}): the next push --no-fallback exited ${r.code}: ${r.stderr.trim()}`
  if (!(await fs.readFile(sc.replica)).equals(await fs.readFile(sc.disk)))
    return `${s.label} (${outcome}): the next push exited 0 but the replica differs from the disk`
  return undefined
}

export async function nextPushAfterTrackerState(sc: SourceScenario, s: CrashStateRef): Promise<string | undefined> {
  const files = crashState(sc.timeline, s.point, s.choice)
  const disk = path.join(sc.realRoot, path.basename(sc.disk))
  await fs.writeFile(disk, files.get(disk)!)
  await fs.writeFile(`${disk}.psf`, files.get(`${disk}.psf`)!)
  const sock = path.join(sc.dir, 'next.sock')
  const tracker = await startTracker(sc.disk, ['--nbd', `unix:${sock}`])
  let r
  try {
    r = await vdrep(['push', sc.disk, '--no-fallback'])
  } finally {
    await tracker.stop('SIGTERM')
  }
  if (r.code !== 0) return `${s.label}: the push --no-fallback after the tracker's restart exited ${r.code}: ${r.stderr.trim()}`
  if (!(await fs.readFile(sc.replica)).equals(files.get(disk)!))
    return `${s.label}: the push after the tracker's restart exited 0 but the replica is not the disk the cut left`
  return undefined
}

/**
 * Remembers, among the states a check passed, the one the next sync is run on: the latest crash
 * point, and there the state that lost the most (the furthest from a clean stop).
 */
export class NextSyncPick {
  best: {s: CrashStateRef; outcome: string; score: number} | undefined

  offer(s: CrashStateRef, v: {outcome: string; failure?: string}, usable = true): void {
    if (v.failure || !usable) return
    const lost = s.point.pending.length - s.choice.keep.size
    const score = s.point.at * 1e6 + lost
    if (!this.best || score >= this.best.score) this.best = {s, outcome: v.outcome, score}
  }
}

/**
 * The `.psf` of a state written in place (the disk is untouched by a push), against the replica
 * as the push left it (the replica host did not lose power): a state whose record names the new
 * sequence, or names it as pending (the cut came after COMMITTED, before the record said so),
 * must take a `push --no-fallback` that exits 0 and ends equal.
 */
export async function nextPushAfterPsfState(sc: SourceScenario, s: CrashStateRef): Promise<string | undefined> {
  const files = crashState(sc.timeline, s.point, s.choice)
  const disk = path.join(sc.realRoot, path.basename(sc.disk))
  await fs.writeFile(`${disk}.psf`, files.get(`${disk}.psf`)!)
  const r = await vdrep(['push', sc.disk, '--no-fallback'])
  if (r.code !== 0) return `${s.label}: the next push --no-fallback exited ${r.code}: ${r.stderr.trim()}`
  if (!(await fs.readFile(sc.replica)).equals(await fs.readFile(sc.disk))) return `${s.label}: the next push exited 0 but the replica differs from the disk`
  return undefined
}
