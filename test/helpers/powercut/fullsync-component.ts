// A full sync under a power cut of the replica host (issue 22). `vdrep fullsync` (a local
// target: the receiver runs in-process) is recorded with the replica's folder as the root, to a
// fresh target or over a seed, with frequent checkpoints. Each crash state is checked as the
// replica host would find it after the cut:
//  - the state file reads (or is absent only where the sync never made it durable: a fresh target);
//  - complete: the replica equals the disk the state's generation names (the seed's, before the
//    sync marked it incomplete, or the source's, once proved);
//  - incomplete: every block below the recorded resume point equals the source's (what a rerun
//    skips), and a replica that lost its name or its size is never left with a resume point;
//  - and, for a sample of states, the real rerun (`vdrep fullsync --json`, the state written in
//    place) exits 0, resumes at the state's resume point and ends `cmp`-equal.
import fs from 'node:fs/promises'
import path from 'node:path'
import {readReplicaState} from '../../../src/core/receiver/replica-state.js'
import {json, vdrep} from '../cli.js'
import {makeMixedDisk, scribbleBlocks} from '../disks.js'
import {describeLoss, type CrashStateRef} from './crash-states.js'
import {buildTimeline, crashState, takeSnapshot, type Timeline} from './fs-model.js'
import {recordVdrep} from './record.js'
import type {Recorded} from './recording.js'

const BS = 16 * 1024
const DISK = 1 << 20

export interface FullsyncScenario {
  kind: 'fresh' | 'seeded'
  dir: string
  realRoot: string
  disk: string
  replica: string
  ops: Recorded[]
  timeline: Timeline
  source: Buffer
  /** The seed's bytes and generation (seeded only). */
  seed?: {data: Buffer; generation: number}
}

async function must(args: string[]): Promise<void> {
  const r = await vdrep(args)
  if (r.code !== 0) throw new Error(`vdrep ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
}

export async function recordFullsyncScenario(dir: string, opts: {kind: 'fresh' | 'seeded'; seed?: string}): Promise<FullsyncScenario> {
  const seed = opts.seed ?? `powercut-fullsync-${opts.kind}`
  const src = path.join(dir, 'src')
  const rep = path.join(dir, 'rep')
  await fs.mkdir(src, {recursive: true})
  await fs.mkdir(rep, {recursive: true})
  const disk = path.join(src, 'disk.img')
  const replica = path.join(rep, 'disk.img')
  await makeMixedDisk(disk, DISK, seed, 64 * 1024)
  await must(['init', disk, '--to', replica, '--block-size', '16k'])
  let seedState: FullsyncScenario['seed']
  if (opts.kind === 'seeded') {
    await must(['fullsync', disk])
    seedState = {data: await fs.readFile(replica), generation: (await readReplicaState(replica)).state!.generation}
    await scribbleBlocks(disk, BS, 24, `${seed}:changed`)
  }
  const snapshot = await takeSnapshot([rep])
  const {result, ops} = await recordVdrep(['fullsync', disk, '--checkpoint-bytes', '128k'], [rep], path.join(dir, 'fullsync.pclog'))
  if (result.code !== 0) throw new Error(`the recorded full sync exited ${result.code}: ${result.stderr}`)
  return {
    kind: opts.kind,
    dir,
    realRoot: await fs.realpath(rep),
    disk,
    replica,
    ops,
    timeline: buildTimeline(ops, snapshot),
    source: await fs.readFile(disk),
    seed: seedState,
  }
}

export interface FullsyncVerdict {
  outcome: string
  failure?: string
  /** The resume point a rerun must start at (incomplete states). */
  resumeBlock?: number
}

/** Check one crash state of the replica's folder (in memory: nothing here needs the files). */
export async function checkFullsyncState(sc: FullsyncScenario, s: CrashStateRef): Promise<FullsyncVerdict> {
  const fail = (why: string): FullsyncVerdict => ({outcome: 'failed', failure: `fullsync (${sc.kind}) ${s.label}: ${why} [${describeLoss(s, sc.ops)}]`})
  const files = crashState(sc.timeline, s.point, s.choice)
  const replicaPath = path.join(sc.realRoot, 'disk.img')
  const replica = files.get(replicaPath) ?? undefined
  const stateBytes = files.get(`${replicaPath}.vdrep`) ?? undefined
  if (!stateBytes) {
    if (sc.kind === 'seeded') return fail("the seed's state file is gone")
    return {outcome: 'not started (no state: the rerun starts from block 0)', resumeBlock: 0}
  }
  const {decodeReplicaState} = await import('../../../src/core/receiver/replica-state.js')
  let state
  try {
    state = decodeReplicaState(stateBytes)
  } catch (err) {
    return fail(`the state file does not decode: ${(err as Error).message}`)
  }
  if (state.complete) {
    const want = sc.seed && state.generation === sc.seed.generation ? sc.seed.data : sc.source
    if (!replica || !replica.equals(want)) return fail(`the state says complete (generation ${state.generation}) but the replica is not the disk it names`)
    return {outcome: want === sc.source ? 'complete, equal to the source' : 'complete, the seed as it was'}
  }
  const r = state.resumeBlock
  if (r > 0) {
    if (!replica) return fail(`incomplete with resume point ${r}, but the replica is gone`)
    const upto = Math.min(r * BS, sc.source.length)
    if (replica.length < upto) return fail(`incomplete with resume point ${r}, but the replica holds only ${replica.length} bytes`)
    for (let b = 0; b < r; b++) {
      if (!replica.subarray(b * BS, (b + 1) * BS).equals(sc.source.subarray(b * BS, (b + 1) * BS)))
        return fail(`incomplete with resume point ${r}, but block ${b} below it is not the source's`)
    }
  }
  return {outcome: r > 0 ? 'incomplete, resumes from its resume point' : 'incomplete, reruns from block 0', resumeBlock: r}
}

/**
 * The real rerun on a crash state: the state written in place of the replica's folder (the
 * `.psf` names that path), `vdrep fullsync --json`, then cmp. Returns a failure or undefined.
 */
export async function rerunFullsync(sc: FullsyncScenario, s: CrashStateRef, resumeBlock: number): Promise<string | undefined> {
  const files = crashState(sc.timeline, s.point, s.choice)
  await fs.rm(sc.realRoot, {recursive: true, force: true})
  for (const [p, data] of [...files].sort(([a], [b]) => a.length - b.length)) {
    if (data === null) await fs.mkdir(p, {recursive: true, mode: 0o700})
    else await fs.writeFile(p, data, {mode: 0o600})
  }
  const r = await vdrep(['fullsync', sc.disk, '--json'])
  if (r.code !== 0) return `fullsync (${sc.kind}) ${s.label}: the rerun exited ${r.code}: ${r.stderr.trim()}`
  const out = json<{resumedAtBlock?: number}>(r)
  const resumed = out.resumedAtBlock ?? 0
  // A resume point of 0 may still be taken from a later durable one the receiver kept; never beyond the state's.
  if (resumed !== resumeBlock) return `fullsync (${sc.kind}) ${s.label}: the rerun resumed at block ${resumed}, the state's resume point is ${resumeBlock}`
  if (!(await fs.readFile(sc.replica)).equals(sc.source)) return `fullsync (${sc.kind}) ${s.label}: the rerun exited 0 but the replica differs from the source`
  return undefined
}
