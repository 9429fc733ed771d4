// One point in time across every member of a group (doc/group-commit.md). Each member's
// tracker freezes and keeps its write gate closed (freeze with holdMs): from that instant the
// VM gets no completion of a new write on that disk. Only once every member holds are they
// all released. So if the guest wrote to disk B after a write to disk A completed, and B's
// write is in B's frozen set, A's write completed before A's hold and is in A's: a write is
// never included without one it depends on. Any member that does not hold in time, or whose
// lease ran out before all held, voids the cut: every frozen set goes back to its record.
import {TransportError, VdrepError, asVdrepError} from '../errors.js'
import {frozenByTracker, type FrozenSet} from '../delta/frozen-set.js'
import type {FreezeResult, TrackerControlClient} from '../tracker/control-client.js'

export interface CutOptions {
  /** How long a member's tracker may take to hold (ms); one that does not answer aborts the cut. */
  timeoutMs: number
  /** How long each tracker holds its writes at most (the lease; ms). */
  leaseMs: number
}

export const DEFAULT_CUT_TIMEOUT_MS = 5_000
export const DEFAULT_HOLD_LEASE_MS = 10_000

export interface CutMember {
  disk: string
  tracker: TrackerControlClient
}

export interface GroupCut {
  frozen: FrozenSet[]
  pointInTimeMs: number
  /** The longest any member's writes were held. */
  heldMs: number
}

/**
 * Test knobs, read here only. VDREP_TEST_GROUP_CUT_STAGGER_MS: members are frozen one after
 * another with this pause between them (the hold must keep the cut consistent all the same).
 * VDREP_TEST_PLANT_GROUP_NO_HOLD=1 is a deliberately broken build for the guest test
 * (test/integration/group-guest.test.ts): freezes without holding writes, which that test
 * must catch as a gap in the records.
 */
function testKnobs(): {staggerMs: number; noHold: boolean} {
  const staggerMs = Number(process.env.VDREP_TEST_GROUP_CUT_STAGGER_MS ?? 0)
  return {staggerMs: Number.isFinite(staggerMs) && staggerMs > 0 ? staggerMs : 0, noHold: process.env.VDREP_TEST_PLANT_GROUP_NO_HOLD === '1'}
}

async function holdAll(members: CutMember[], opts: CutOptions): Promise<Array<PromiseSettledResult<FreezeResult>>> {
  const {staggerMs, noHold} = testKnobs()
  const hold = (m: CutMember) => m.tracker.freeze({...(noHold ? {} : {holdMs: opts.leaseMs}), timeoutMs: opts.timeoutMs})
  if (staggerMs === 0) return Promise.allSettled(members.map(hold))
  const out: Array<PromiseSettledResult<FreezeResult>> = []
  for (const m of members) {
    if (out.length > 0) await new Promise((resolve) => setTimeout(resolve, staggerMs))
    out.push(
      await hold(m).then(
        (value) => ({status: 'fulfilled' as const, value}),
        (reason: unknown) => ({status: 'rejected' as const, reason}),
      ),
    )
  }
  return out
}

export async function takeGroupCut(members: CutMember[], opts: CutOptions): Promise<GroupCut> {
  const holds = await holdAll(members, opts)
  const pointInTimeMs = Date.now()
  const frozen = holds.map((h, i) => (h.status === 'fulfilled' ? frozenByTracker(members[i].tracker, h.value) : null))
  const failed = holds.findIndex((h) => h.status === 'rejected')
  // Every member answered or not: release them all now (the others must not wait for one that hangs).
  const released = await Promise.allSettled(
    members.map((m, i) => (frozen[i] ? m.tracker.release(opts.timeoutMs) : Promise.resolve({held: false, expired: false, heldMs: 0}))),
  )
  const giveBack = () => Promise.all(frozen.map((f) => f?.complete(false).catch(() => {})))
  if (failed >= 0) {
    await giveBack()
    const cause = asVdrepError((holds[failed] as PromiseRejectedResult).reason)
    throw new TransportError(
      'GROUP_CUT_FAILED',
      `the tracker of ${members[failed].disk} did not take the group's cut (${cause.message}); the other members were resumed and nothing was sent`,
      {cause, hint: 'check that `vdrep track` of that disk runs and answers (vdrep status), then push the group again'},
    )
  }
  const noHold = testKnobs().noHold
  const lapsed = released.findIndex((r) => r.status === 'rejected' || r.value.expired || (!r.value.held && !noHold))
  if (lapsed >= 0) {
    await giveBack()
    const r = released[lapsed]
    const why = r.status === 'rejected' ? `its release failed: ${asVdrepError(r.reason).message}` : `its hold ran out after ${r.value.heldMs} ms (the lease)`
    throw new VdrepError(
      'GROUP_CUT_EXPIRED',
      `the group's cut is void: the tracker of ${members[lapsed].disk} resumed writes before every member was frozen (${why}); nothing was sent`,
      {
        hint: 'push the group again; if it recurs, a tracker is too slow to answer (a loaded host)',
      },
    )
  }
  const heldMs = Math.max(...released.map((r) => (r.status === 'fulfilled' ? r.value.heldMs : 0)))
  return {frozen: frozen as FrozenSet[], pointInTimeMs, heldMs}
}
