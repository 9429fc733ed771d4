// Crash states from a timeline (fs-model.ts): at each crash point, every combination of the
// unsynced units and directory prefixes where there are few, else a seeded sample (the first two
// of which are "nothing unsynced survived" and "all of it did"). Like the crash matrix, the seed
// is printed and replays the same states.
import fs from 'node:fs/promises'
import path from 'node:path'
import {makeRng, type Rng} from '../crash-matrix.js'
import {crashState, type CrashChoice, type CrashPoint, type Timeline} from './fs-model.js'
import {describeOp, type Recorded} from './recording.js'

export interface CrashStateRef {
  point: CrashPoint
  choice: CrashChoice
  /** "crash before op 41 (fdatasync …), state 3 of 40 (sampled)" */
  label: string
}

export interface StateOptions {
  seed: number
  /** States per crash point at most (exhaustive below this). */
  perPoint: number
  /** Only crash points whose index passes (e.g. those after the push began). */
  where?: (p: CrashPoint) => boolean
}

/** How many states a point allows (Infinity past 2^40). */
export function stateCount(p: CrashPoint): number {
  let n = p.pending.length > 40 ? Infinity : 2 ** p.pending.length
  for (const l of p.pendingDirOps.values()) n *= l.length + 1
  return n
}

function* exhaustive(p: CrashPoint): Generator<CrashChoice> {
  const dirs = [...p.pendingDirOps]
  const total = stateCount(p)
  for (let i = 0; i < total; i++) {
    let rest = i
    const keep = new Set<number>()
    for (const u of p.pending) {
      if (rest % 2) keep.add(u.id)
      rest = Math.floor(rest / 2)
    }
    const prefix = new Map<string, number>()
    for (const [d, l] of dirs) {
      prefix.set(d, rest % (l.length + 1))
      rest = Math.floor(rest / (l.length + 1))
    }
    yield {keep, prefix}
  }
}

function sampled(p: CrashPoint, rng: Rng, k: number): CrashChoice {
  const dirs = [...p.pendingDirOps]
  if (k < 2) {
    const all = k === 1
    return {keep: new Set(all ? p.pending.map((u) => u.id) : []), prefix: new Map(dirs.map(([d, l]) => [d, all ? l.length : 0]))}
  }
  // Per inode: none, all, or each unit with its own odds, so states both near the extremes
  // (one page torn) and far from them (a scattered half) come up.
  const mode = new Map<number, number>()
  const keep = new Set<number>()
  for (const u of p.pending) {
    if (!mode.has(u.inode)) mode.set(u.inode, rng.int(4))
    const m = mode.get(u.inode)!
    const odds = m === 0 ? 0 : m === 1 ? 1 : m === 2 ? 0.5 : 0.05 + 0.9 * rng.next()
    if (rng.next() < odds) keep.add(u.id)
  }
  return {keep, prefix: new Map(dirs.map(([d, l]) => [d, rng.int(l.length + 1)]))}
}

export function* crashStates(t: Timeline, o: StateOptions): Generator<CrashStateRef> {
  const rng = makeRng(o.seed, 'powercut')
  for (const p of t.points) {
    if (o.where && !o.where(p)) continue
    const total = stateCount(p)
    const n = Math.min(total, o.perPoint)
    const it = total <= o.perPoint ? exhaustive(p) : undefined
    for (let k = 0; k < n; k++) {
      const choice = it ? it.next().value! : sampled(p, rng, k)
      yield {
        point: p,
        choice,
        label: `crash before op ${p.at} (${p.what}), state ${k + 1} of ${n}${it ? '' : ` (sampled from ${total === Infinity ? 'more than 2^40' : total})`}`,
      }
    }
  }
}

/** What the state lost, for a failure message: unsynced ops not (or partly) kept, dir ops cut off. */
export function describeLoss(s: CrashStateRef, ops: Recorded[]): string {
  const lost = new Map<number, {kept: number; total: number}>()
  for (const u of s.point.pending) {
    const e = lost.get(u.op) ?? {kept: 0, total: 0}
    e.total++
    if (s.choice.keep.has(u.id)) e.kept++
    lost.set(u.op, e)
  }
  const parts: string[] = []
  for (const [op, e] of lost) if (e.kept < e.total) parts.push(`op ${op} ${describeOp(ops[op])}: ${e.total - e.kept} of ${e.total} pages lost`)
  for (const [dir, l] of s.point.pendingDirOps) {
    const n = s.choice.prefix.get(dir) ?? 0
    for (const d of l.slice(n)) parts.push(`op ${d.op} ${describeOp(ops[d.op])}: not durable`)
  }
  return parts.length === 0 ? 'nothing lost' : parts.join('; ')
}

/**
 * Write a crash state under `to`: each recorded root maps to `to/<index>` (or, with `inPlace`,
 * the state replaces the roots' contents). Returns the path a recorded path now has.
 */
export async function materialize(t: Timeline, s: CrashStateRef, roots: string[], to: string): Promise<(p: string) => string> {
  const real = await Promise.all(roots.map((r) => fs.realpath(r)))
  const map = (p: string) => {
    const i = real.findIndex((r) => p === r || p.startsWith(`${r}/`))
    if (i < 0) throw new Error(`${p} is not under a recorded root`)
    return path.join(to, String(i), p.slice(real[i].length))
  }
  await fs.rm(to, {recursive: true, force: true})
  const state = [...crashState(t, s.point, s.choice)].sort(([a], [b]) => a.length - b.length)
  for (const [p, data] of state) {
    if (data === null) await fs.mkdir(map(p), {recursive: true, mode: 0o700})
    else {
      await fs.mkdir(path.dirname(map(p)), {recursive: true, mode: 0o700})
      await fs.writeFile(map(p), data, {mode: 0o600})
    }
  }
  return map
}
