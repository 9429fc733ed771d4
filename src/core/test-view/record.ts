// A test that ended is recorded in the replica's state (`tests`, the newest MAX_TEST_RECORDS):
// which point, when, for how long. The replica's state has one writer at a time, so this takes
// the replica lock as a receiver would, waiting while a push commits.
import {LockError, StateError} from '../errors.js'
import {acquireReplica} from '../locks/index.js'
import {MAX_TEST_RECORDS, readReplicaState, writeReplicaState, type TestRecord} from '../receiver/replica-state.js'
import {formatDuration} from '../util/units.js'

/** How long a stop waits for a receiver to let go of the replica lock. */
export const RECORD_WAIT_MS = 60_000

/** Record `rec`; false when the replica lock stayed taken for `waitMs` (nothing written). */
export async function recordTest(replica: string, rec: TestRecord, waitMs = RECORD_WAIT_MS): Promise<boolean> {
  const deadline = Date.now() + waitMs
  for (;;) {
    let release: () => void
    try {
      release = await acquireReplica(replica, 'a receiver')
    } catch (err) {
      if (!(err instanceof LockError) || Date.now() > deadline) {
        if (err instanceof LockError) return false
        throw err
      }
      await new Promise((r) => setTimeout(r, 100))
      continue
    }
    try {
      const {state, error} = await readReplicaState(replica)
      if (error) throw error
      if (!state) throw new StateError('POINT_UNTRUSTED', `${replica} has no vdrep state any more`)
      const tests = [...(state.tests ?? []), rec].slice(-MAX_TEST_RECORDS)
      await writeReplicaState(replica, {...state, tests})
      return true
    } finally {
      release()
    }
  }
}

/** The newest recorded test of the point (sequence `seq`, committed at `pointMs`), or undefined. */
export function lastTestOf(tests: readonly TestRecord[] | undefined, seq: number, pointMs: number): TestRecord | undefined {
  return [...(tests ?? [])].reverse().find((t) => t.seq === seq && t.pointMs === pointMs)
}

/** `2026-12-07T11:30:00.000Z for 5m`: when a test ended and how long it ran. */
export function describeTest(t: TestRecord): string {
  return `${new Date(t.endedMs).toISOString()} for ${formatDuration(Math.max(1, Math.round((t.endedMs - t.startedMs) / 1000)))}`
}
