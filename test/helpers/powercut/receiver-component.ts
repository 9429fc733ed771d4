// The receiver's commit under a power cut of the replica host (issue 22). A local push (the
// receiver runs in-process over the same protocol) is recorded with the replica's folder as the
// root; every crash state of that folder is then recovered the way `vdrep serve` does at start
// (recoverJournal) and checked:
//  - the state file reads (a crash never leaves it torn: it is replaced by rename);
//  - no journal is left;
//  - a complete replica whose state trusts it is byte for byte the point its state names: the
//    previous one or the new one, never a mix (a replica in doubt or incomplete is refused by the
//    next push, which runs a full sync: safe, and counted apart);
//  - every restore point kept at that point (before the push, or after its retention) is still
//    listed, with no damaged record, and each
//    listed point reads back (openPoint) exactly as the source was when it was pushed.
import {createHash} from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {recoverJournal} from '../../../src/core/delta/apply.js'
import {journalPathFor} from '../../../src/core/delta/journal.js'
import {listPoints} from '../../../src/core/points/list.js'
import {openPoint} from '../../../src/core/points/point-reader.js'
import {encodeReplicaState, readReplicaState, statePathFor} from '../../../src/core/receiver/replica-state.js'
import {vdrep} from '../cli.js'
import {makeMixedDisk, scribbleBlocks} from '../disks.js'
import {describeLoss, materialize, type CrashStateRef} from './crash-states.js'
import {buildTimeline, takeSnapshot, type Timeline} from './fs-model.js'
import {recordVdrep} from './record.js'
import type {Recorded} from './recording.js'

const BS = 16 * 1024
const DISK = 1 << 20

export interface ReceiverScenario {
  dir: string
  root: string
  /** `root` with symlinks resolved (the recording's paths). */
  realRoot: string
  replica: string
  ops: Recorded[]
  timeline: Timeline
  /** sha256 of the disk at each sequence the replica had or gets. */
  points: Map<number, string>
  prevSeq: number
  newSeq: number
  /** The points listed before the recorded push, and after it (retention may have dropped some). */
  keptBefore: number[]
  keptAfter: number[]
  disk: string
  /** The source's `.psf` before the recorded push and after it (for the next push, next-sync.ts). */
  psfBefore: Buffer
  psfAfter: Buffer
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function must(args: string[], env: NodeJS.ProcessEnv = {}): Promise<void> {
  const r = await vdrep(args, {env})
  if (r.code !== 0) throw new Error(`vdrep ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
}

/**
 * A replica with `earlier` pushes behind it (so it keeps restore points), then one recorded push
 * of `blocks` changed blocks. `env` reaches the recorded push (a planted fault); `retention` is
 * set on the replica first.
 */
export async function recordReceiverScenario(
  dir: string,
  opts: {earlier?: number; blocks?: number; seed?: string; retention?: string; env?: NodeJS.ProcessEnv} = {},
): Promise<ReceiverScenario> {
  const src = path.join(dir, 'src')
  const root = path.join(dir, 'rep')
  await fs.mkdir(src, {recursive: true})
  await fs.mkdir(root, {recursive: true})
  const disk = path.join(src, 'disk.img')
  const replica = path.join(root, 'disk.img')
  const seed = opts.seed ?? 'powercut'
  await makeMixedDisk(disk, DISK, seed, 64 * 1024)
  await must(['init', disk, '--to', replica, '--block-size', '16k'])
  await must(['fullsync', disk])
  // A retention such as 1h:1m keeps one point per minute: each quick push then merges the records of the points between.
  if (opts.retention) await must(['points', replica, '--retention', opts.retention])
  const points = new Map<number, string>()
  const seqNow = async () => (await readReplicaState(replica)).state!.lastSeq
  points.set(await seqNow(), sha(await fs.readFile(disk)))
  for (let i = 0; i < (opts.earlier ?? 2); i++) {
    await scribbleBlocks(disk, BS, 4, `${seed}:earlier:${i}`)
    await must(['push', disk])
    points.set(await seqNow(), sha(await fs.readFile(disk)))
  }
  const prevSeq = await seqNow()
  const kept = async () => (await listPoints(replica)).points.map((p) => p.seq)
  const keptBefore = await kept()
  await scribbleBlocks(disk, BS, opts.blocks ?? 6, `${seed}:recorded`)
  const snapshot = await takeSnapshot([root])
  const psfBefore = await fs.readFile(`${disk}.psf`)
  const {result, ops} = await recordVdrep(['push', disk], [root], path.join(dir, 'push.pclog'), opts.env)
  if (result.code !== 0) throw new Error(`the recorded push exited ${result.code}: ${result.stderr}`)
  const newSeq = await seqNow()
  points.set(newSeq, sha(await fs.readFile(disk)))
  return {
    dir,
    root,
    realRoot: await fs.realpath(root),
    replica,
    ops,
    timeline: buildTimeline(ops, snapshot),
    points,
    prevSeq,
    newSeq,
    keptBefore,
    keptAfter: await kept(),
    disk,
    psfBefore,
    psfAfter: await fs.readFile(`${disk}.psf`),
  }
}

export interface ReceiverVerdict {
  /** 'previous point', 'new point', 'refused: …' */
  outcome: string
  /** Set when the state breaks a promise. */
  failure?: string
}

/**
 * A materialized replica has a new mtime and ctime, which the state file would read as "written
 * since its last commit" (and recovery then rightly refuses to vouch for the restore points). On
 * a real power cut an untouched replica keeps its stamp: so where the replica's bytes are those
 * of the snapshot and the state is the one from before the push, the state's recorded stamp is
 * set to the copy's. Nothing else in the state is touched; a replica the crash left changed
 * keeps the fresh stamp (as if the mtime update reached the disk: the side that doubts).
 */
async function keepStampOfUntouchedReplica(sc: ReceiverScenario, replica: string): Promise<void> {
  const {state} = await readReplicaState(replica)
  const before = sc.timeline.snapshot.get(sc.replica.replace(sc.root, sc.realRoot))
  if (!state || state.lastSeq !== sc.prevSeq || !before || before.dir) return
  if (!(await fs.readFile(replica)).equals(before.data)) return
  const st = await fs.stat(replica, {bigint: true})
  await fs.writeFile(statePathFor(replica), encodeReplicaState({...state, mtimeNs: st.mtimeNs.toString(), ctimeNs: st.ctimeNs.toString()}))
}

/** Recover one crash state of the replica's folder as `vdrep serve` would, and check it. */
export async function checkReceiverState(sc: ReceiverScenario, s: CrashStateRef, scratch: string): Promise<ReceiverVerdict> {
  const map = await materialize(sc.timeline, s, [sc.root], scratch)
  const replica = map(path.join(sc.realRoot, path.basename(sc.replica)))
  const fail = (why: string): ReceiverVerdict => ({outcome: 'failed', failure: `${s.label}: ${why} [${describeLoss(s, sc.ops)}]`})
  await keepStampOfUntouchedReplica(sc, replica)
  try {
    await recoverJournal(replica)
  } catch (err) {
    return fail(`recovery threw ${(err as Error).message}`)
  }
  if (
    await fs.lstat(journalPathFor(replica)).then(
      () => true,
      () => false,
    )
  )
    return fail('a journal is left after recovery')
  const {state, error} = await readReplicaState(replica)
  if (error) return fail(`the state file is unreadable: ${error.message}`)
  if (!state) return fail('the state file is gone')
  if (!state.complete || state.doubt || state.diverged)
    return {outcome: `refused until a full sync (${!state.complete ? 'incomplete' : state.diverged ? 'diverged' : 'in doubt'})`}
  const got = sha(await fs.readFile(replica))
  if (state.lastSeq !== sc.prevSeq && state.lastSeq !== sc.newSeq)
    return fail(`the state names sequence ${state.lastSeq}, neither ${sc.prevSeq} nor ${sc.newSeq}`)
  if (got !== sc.points.get(state.lastSeq)) {
    const other = [...sc.points].find(([, h]) => h === got)
    return fail(`the state trusts sequence ${state.lastSeq} but the replica is ${other ? `sequence ${other[0]}` : 'no point at all (a mix)'}`)
  }
  const listing = await listPoints(replica)
  if (listing.problem) return fail(`a restore point record is damaged: ${listing.problem}`)
  const listed = new Set(listing.points.map((p) => p.seq))
  // Retention runs after the commit: at the new point, the points it keeps must be there.
  for (const seq of state.lastSeq === sc.newSeq ? sc.keptAfter : sc.keptBefore) if (!listed.has(seq)) return fail(`restore point ${seq} is lost`)
  for (const p of listing.points) {
    if (p.current) continue
    const r = await openPoint(replica, p.seq)
    try {
      const b = await r.read(0, r.size)
      if (sha(b) !== sc.points.get(p.seq)) return fail(`restore point ${p.seq} reads back wrong`)
    } finally {
      await r.close()
    }
  }
  return {outcome: state.lastSeq === sc.newSeq ? 'new point' : 'previous point'}
}
