// What state a replica is in, for `vdrep replicas`: one function, so that every command that
// adds a state (a failover's `promoted`, a running test) plugs in here and nowhere else.
// A flag in the replica state is read defensively: present and truthy means set.
import type {BigIntStats} from 'node:fs'
import type {ReplicaState} from '../receiver/replica-state.js'

export type ReplicaCondition = 'replicating' | 'testing' | 'promoted' | 'diverged' | 'doubt' | 'incomplete' | 'missing' | 'unreadable'

export interface ConditionInput {
  state?: ReplicaState
  /** Why the state file cannot be used (corrupt, foreign). */
  stateError?: string
  /** The replica's stat now; undefined: there is no replica file. */
  stat?: BigIntStats
  /** A `vdrep test start` of one of its points runs now (test-view/running.ts). */
  testRunning?: boolean
}

/** A field another command may add to the state (`promoted`, `testing`): set when truthy, whatever its shape. */
export function stateFlag(state: ReplicaState | undefined, field: string): boolean {
  const v = (state as Record<string, unknown> | undefined)?.[field]
  return v !== undefined && v !== null && v !== false && v !== 0 && v !== ''
}

/** The replica's stat is not what the receiver recorded at its last commit: something else wrote it. */
export function movedSinceCommit(state: ReplicaState, st: BigIntStats): boolean {
  return Number(st.size) !== state.size || st.mtimeNs.toString() !== state.mtimeNs || st.ctimeNs.toString() !== state.ctimeNs
}

/** The condition and, unless plainly replicating, why (the first that applies, most serious first). */
export function replicaCondition(i: ConditionInput): {condition: ReplicaCondition; reason: string | null} {
  if (i.stateError) return {condition: 'unreadable', reason: `the replica state cannot be used: ${i.stateError}`}
  const s = i.state
  if (!s) return {condition: 'unreadable', reason: 'no replica state'}
  if (!i.stat) return {condition: 'missing', reason: 'the state is there but the replica file is not'}
  // Promoted first: a promoted replica is written by its new user, so its stat moves by design.
  if (stateFlag(s, 'promoted')) return {condition: 'promoted', reason: 'failed over: fenced against its old source'}
  if (!s.complete) return {condition: 'incomplete', reason: 'a full sync is running or did not finish'}
  if (s.diverged) return {condition: 'diverged', reason: 'written by something other than vdrep while the receiver was down'}
  if (movedSinceCommit(s, i.stat)) return {condition: 'diverged', reason: 'changed outside vdrep since its last commit (size, mtime or ctime)'}
  if (s.doubt) return {condition: 'doubt', reason: s.doubt}
  if (i.testRunning) return {condition: 'testing', reason: 'a test view of a point is open; replication goes on'}
  return {condition: 'replicating', reason: null}
}
