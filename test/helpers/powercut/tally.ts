// Runs a check over crash states and counts what happened, for the tests and the long run.
import {crashStates, type CrashStateRef, type StateOptions} from './crash-states.js'
import type {Timeline} from './fs-model.js'

export interface Tally {
  component: string
  points: number
  states: number
  outcomes: Record<string, number>
  failures: string[]
  seconds: number
}

export async function checkStates(
  component: string,
  t: Timeline,
  o: StateOptions & {limit?: number},
  check: (s: CrashStateRef) => Promise<{outcome: string; failure?: string}>,
): Promise<Tally> {
  const start = Date.now()
  const tally: Tally = {component, points: 0, states: 0, outcomes: {}, failures: [], seconds: 0}
  const seen = new Set<number>()
  for (const s of crashStates(t, o)) {
    if (o.limit !== undefined && tally.states >= o.limit) break
    if (!seen.has(s.point.at)) seen.add(s.point.at)
    const v = await check(s)
    tally.states++
    tally.outcomes[v.outcome] = (tally.outcomes[v.outcome] ?? 0) + 1
    if (v.failure) tally.failures.push(v.failure)
  }
  tally.points = seen.size
  tally.seconds = (Date.now() - start) / 1000
  return tally
}

export function formatTally(t: Tally, seed: number): string {
  const outcomes = Object.entries(t.outcomes)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ')
  return `${t.component}: ${t.states} crash states at ${t.points} crash points (seed ${seed}), ${t.failures.length} failures; ${outcomes} (${t.seconds.toFixed(1)} s)`
}
