// The long power-cut run (issue 22): `npm run powercut -- --points N [--seed S] [--components a,b]
// [--per-point P]`. For each component it records real vdrep runs under the LD_PRELOAD recorder
// (each with its own seeded disk and change set) until at least N crash states were checked,
// then prints the states, crash points, outcomes and failures per component and a total line.
// Once per recording, the real next sync runs on one state (the receiver: `push --no-fallback`;
// the tracker: its restart, then a push through it; the full sync: one rerun in 25 states).
// Exits 1 on any failure, printing the seed to replay it. Runs as root (the tracker component
// drives qemu-io through an NBD export, like the other tracker tests).
import fs from 'node:fs/promises'
import {crashSeed, makeRng} from '../test/helpers/crash-matrix.js'
import {tempDir} from '../test/helpers/disks.js'
import {checkFullsyncState, recordFullsyncScenario, rerunFullsync} from '../test/helpers/powercut/fullsync-component.js'
import {checkReceiverState, recordReceiverScenario} from '../test/helpers/powercut/receiver-component.js'
import {checkSourceState, recordPsfPushScenario, recordPsfScanScenario, recordTrackerScenario} from '../test/helpers/powercut/source-component.js'
import {NextSyncPick, nextPushAfterPsfState, nextPushAfterReceiverState, nextPushAfterTrackerState} from '../test/helpers/powercut/next-sync.js'
import {checkStates, formatTally, type Tally} from '../test/helpers/powercut/tally.js'
import type {CrashStateRef} from '../test/helpers/powercut/crash-states.js'

const COMPONENTS = ['receiver', 'psf', 'tracker', 'fullsync'] as const
type Component = (typeof COMPONENTS)[number]

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? undefined : (process.argv[i + 1] ?? '')
}

function fail(message: string): never {
  process.stderr.write(`powercut: ${message}\n`)
  process.exit(2)
}

const points = Number(option('points') ?? '2000')
if (!Number.isSafeInteger(points) || points < 1) fail(`--points needs a whole number of at least 1, not '${option('points')}'`)
const perPoint = Number(option('per-point') ?? '40')
if (!Number.isSafeInteger(perPoint) || perPoint < 2) fail(`--per-point needs a whole number of at least 2`)
let seed: number
try {
  seed = crashSeed(option('seed') ?? process.env.VDREP_POWERCUT_SEED)
} catch (err) {
  fail((err as Error).message)
}
const components = (option('components')?.split(',') ?? [...COMPONENTS]) as Component[]
for (const c of components) if (!COMPONENTS.includes(c)) fail(`unknown component '${c}' (components: ${COMPONENTS.join(', ')})`)
if (process.getuid?.() !== 0) fail('run as root (the tracker component serves an NBD export to qemu-io)')

process.stdout.write(`power cut: at least ${points} crash states per component, ${perPoint} per crash point at most, seed ${seed} (replay: --seed ${seed})\n`)

/** The real next sync on the state picked, counted among the outcomes; its failure is the tally's. */
async function withNextSync(t: Tally, pick: NextSyncPick, next: (s: CrashStateRef, outcome: string) => Promise<string | undefined>): Promise<Tally> {
  if (!pick.best) return t
  const f = await next(pick.best.s, pick.best.outcome)
  t.outcomes['(next push run, ended equal)'] = (t.outcomes['(next push run, ended equal)'] ?? 0) + (f ? 0 : 1)
  if (f) t.failures.push(f)
  return t
}

/** One recording of a component, checked: its tally (and, for the full sync, the reruns it ran). */
async function runOnce(c: Component, run: number, dir: string): Promise<Tally> {
  const rng = makeRng(seed, `${c}:${run}`)
  const label = `${seed}:${c}:${run}`
  const opts = {seed: seed + run, perPoint}
  const scratch = `${dir}/state`
  switch (c) {
    case 'receiver': {
      // The default retention (points kept, the oldest dropped by the byte cap), one point a minute
      // (every quick push drops the one before it), or none (no records at all).
      const retention = [undefined, '1h:1m', 'off'][run % 3]
      const sc = await recordReceiverScenario(dir, {seed: label, earlier: 1 + rng.int(3), blocks: 2 + rng.int(12), retention})
      // The real next push on one state per recording (the previous point on even runs, the new one on odd).
      const pick = new NextSyncPick()
      const want = run % 2 === 0 ? 'previous point' : 'new point'
      const t = await checkStates(c, sc.timeline, opts, async (s) => {
        const v = await checkReceiverState(sc, s, scratch)
        pick.offer(s, v, v.outcome === want)
        return v
      })
      return withNextSync(t, pick, (s, outcome) => nextPushAfterReceiverState(sc, s, outcome))
    }
    case 'psf': {
      // Odd runs: a scan (its bits and its stamp); even runs: a push (freeze, commit, in-flight cleared).
      if (run % 2 === 1) {
        const scan = await recordPsfScanScenario(dir, {seed: label, blocks: 1 + rng.int(16)})
        return checkStates(c, scan.timeline, opts, (s) => checkSourceState(scan, s, scratch))
      }
      const sc = await recordPsfPushScenario(dir, {seed: label, blocks: 1 + rng.int(16)})
      // The next push on a state whose record has the new sequence only as pending (it adopts it).
      const pick = new NextSyncPick()
      const t = await checkStates(c, sc.timeline, opts, async (s) => {
        const v = await checkSourceState(sc, s, scratch)
        pick.offer(s, v, v.outcome.includes('pending'))
        return v
      })
      return withNextSync(t, pick, (s) => nextPushAfterPsfState(sc, s))
    }
    case 'tracker': {
      const sc = await recordTrackerScenario(dir, {seed: label, writes: 2 + rng.int(16), push: run % 2 === 0})
      const pick = new NextSyncPick()
      const t = await checkStates(c, sc.timeline, opts, async (s) => {
        const v = await checkSourceState(sc, s, scratch)
        pick.offer(s, v)
        return v
      })
      return withNextSync(t, pick, (s) => nextPushAfterTrackerState(sc, s))
    }
    case 'fullsync': {
      const sc = await recordFullsyncScenario(dir, {kind: run % 2 === 0 ? 'fresh' : 'seeded', seed: label})
      const reruns: string[] = []
      let rerun = 0
      const t = await checkStates(c, sc.timeline, opts, async (s) => {
        const v = await checkFullsyncState(sc, s)
        // The real rerun on one state in 25 (each is a vdrep process): it resumes where the state says and ends equal.
        if (!v.failure && v.resumeBlock !== undefined && rng.int(25) === 0) {
          rerun++
          const f = await rerunFullsync(sc, s, v.resumeBlock)
          if (f) reruns.push(f)
        }
        return v
      })
      t.failures.push(...reruns)
      t.outcomes['(reruns run)'] = rerun
      return t
    }
  }
}

const totals: Tally[] = []
let failed = 0
for (const c of components) {
  const sum: Tally = {component: c, points: 0, states: 0, outcomes: {}, failures: [], seconds: 0}
  for (let run = 0; sum.states < points; run++) {
    const dir = await tempDir(`vdrep-powercut-${c}-`)
    try {
      const t = await runOnce(c, run, dir)
      sum.points += t.points
      sum.states += t.states
      sum.seconds += t.seconds
      for (const [k, v] of Object.entries(t.outcomes)) sum.outcomes[k] = (sum.outcomes[k] ?? 0) + v
      sum.failures.push(...t.failures)
    } finally {
      await fs.rm(dir, {recursive: true, force: true})
    }
    if (sum.failures.length > 0) break
  }
  totals.push(sum)
  failed += sum.failures.length
  process.stdout.write(`${formatTally(sum, seed)}\n`)
  for (const f of sum.failures.slice(0, 10)) process.stdout.write(`  FAILED ${f}\n`)
}
const states = totals.reduce((n, t) => n + t.states, 0)
process.stdout.write(`total: ${states} crash states over ${totals.length} components, ${failed} failures (seed ${seed})\n`)
process.exitCode = failed > 0 ? 1 : 0
