// The restore points of a replica, for `vdrep points`: the current point (the replica itself)
// and one per record in the chain, newest first, each with the bytes its record keeps.
import {StateError} from '../errors.js'
import {readReplicaState} from '../receiver/replica-state.js'
import {closeChain, loadChain} from './chain.js'
import {DEFAULT_RETENTION} from './retention.js'
import {describeTest, lastTestOf} from '../test-view/record.js'
import {runningTest} from '../test-view/running.js'

export interface PointInfo {
  seq: number
  /** Commit time, ISO 8601. */
  time: string
  /** Bytes of the undo record that reaches this point from the next newer one (0 for the current point). */
  bytes: number
  /** The disk's size at the point. */
  diskSize: number
  current: boolean
  /** When the last test of this point ended and how long it ran (`vdrep test stop` records it); null: never tested. */
  tested: string | null
  /** The consistency group point this is part of ("db#3"), when a group record names it. */
  group?: string
}

export interface PointsListing {
  replica: string
  retention: string
  /** Why the replica's points cannot be read now (incomplete, diverged), if so; the list is then the current point only. */
  untrusted?: string
  /** A damaged record that cut the chain short, if any. */
  problem?: string
  points: PointInfo[]
  totalBytes: number
  /** A test of this replica running now (`vdrep test start`): its point, since when, its pid. */
  testing?: {seq: number; since: string; pid: number}
}

export async function listPoints(replica: string): Promise<PointsListing> {
  const {state, error} = await readReplicaState(replica)
  if (error) throw error
  if (!state) throw new StateError('POINT_UNTRUSTED', `${replica} has no vdrep state: it is not a replica, or was never synced`)
  const out: PointsListing = {replica, retention: state.retention ?? `${DEFAULT_RETENTION} (default)`, points: [], totalBytes: 0}
  if (!state.complete || state.diverged || state.doubt || state.promoted) {
    out.untrusted = state.promoted
      ? 'the replica was promoted by a failover: it is a source now, and its undo records no longer lay over it'
      : !state.complete
        ? 'the replica is incomplete (a full sync is running or did not finish)'
        : 'the replica is diverged or in doubt'
    return out
  }
  const tested = (seq: number, ms: number) => {
    const t = lastTestOf(state.tests, seq, ms)
    return t ? describeTest(t) : null
  }
  const running = await runningTest(replica)
  if (running) out.testing = {seq: running.seq, since: new Date(running.startedMs).toISOString(), pid: running.pid}
  const chain = await loadChain(replica, state)
  try {
    out.problem = chain.problem
    out.points.push({
      seq: state.lastSeq,
      time: new Date(state.commitMs ?? state.updatedMs).toISOString(),
      bytes: 0,
      diskSize: state.diskSize,
      current: true,
      tested: tested(state.lastSeq, state.commitMs ?? state.updatedMs),
    })
    for (const f of [...chain.files].reverse()) {
      out.points.push({
        seq: f.header.fromSeq,
        time: new Date(f.header.fromMs).toISOString(),
        bytes: f.size,
        diskSize: f.header.fromDiskSize,
        current: false,
        tested: tested(f.header.fromSeq, f.header.fromMs),
      })
      out.totalBytes += f.size
    }
  } finally {
    await closeChain(chain)
  }
  return out
}
