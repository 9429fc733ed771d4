// `vdrep failover --group NAME --root DIR` on the replica host: every member of a consistency
// group promoted at one point in time (doc/group-commit.md). Every member is checked before the
// first is promoted, so a member that cannot fail over (not a replica, incomplete, the point not
// kept, a replica that is no longer the one the group point names) changes nothing anywhere.
// The promotions then run one member after the other, each as `vdrep failover` does it (fenced
// first, rolled back, given its record); a run cut short is finished by running it again: the
// members promoted already are confirmed at the same point, the rest are promoted. Before the
// point is chosen, every member's held bundle (a group push cut between its members' applies)
// is settled as the receiver would settle it: applied when its group record was written, so
// the newest committed group point stays the one failed over to.
import fs from 'node:fs/promises'
import path from 'node:path'
import {UsageError} from '../errors.js'
import {checkFailoverFit, failover, type FailoverOptions, type FailoverResult} from '../failover/failover.js'
import {acquireReplica} from '../locks/index.js'
import {heldJournalPathFor, settleHeld} from './held-journal.js'
import {planRollback} from '../failover/rollback.js'
import {readReplicaState, type ReplicaState} from '../receiver/replica-state.js'
import {isGroupName} from './name.js'
import {isMembersPoint, listGroupPoints, type GroupPoint} from './points.js'
import {listGroupRecords} from './store.js'

export interface GroupFailoverOptions extends Pick<FailoverOptions, 'planned' | 'force' | 'settings' | 'now' | 'log'> {
  root: string
  group: string
  /**
   * The group point to fail over to (its group sequence, `vdrep points --group`). Without it: with
   * `planned`, every member at its last commit (each a final push); otherwise the newest group
   * point that can be restored.
   */
  groupSeq?: number
}

export interface GroupFailoverResult {
  group: string
  /** The group point every member was put at; absent for a planned failover at the final pushes. */
  groupSeq?: number
  members: FailoverResult[]
}

interface Target {
  replica: string
  /** The member's sequence at the group point; undefined: its last commit. */
  seq?: number
  /** The replica id the group point names: the replica must still belong to that source. */
  replicaId: string
  /** When the group point's record was written (a point, not the planned form's final pushes). */
  committedMs?: number
}

/** A member promoted already (an earlier run cut short): the sequence it was promoted at. */
async function promotedAt(root: string, rel: string): Promise<number | undefined> {
  const p = (await readReplicaState(path.join(root, rel)).catch(() => ({state: undefined}))).state?.promoted
  return p ? (p.rollbackTo ?? p.atSeq) : undefined
}

/**
 * The group point to fail over to: one every member can be put at, each still keeping its
 * sequence, or promoted at it already (a run cut short is finished at the same point).
 */
async function pickPoint(o: GroupFailoverOptions): Promise<GroupPoint> {
  const points = await listGroupPoints(o.root, o.group)
  if (points.length === 0) throw new UsageError('GROUP_NO_POINT', `group ${o.group} has no group point under ${o.root}: nothing was changed`)
  const hint = {hint: `list them with \`vdrep points --group ${o.group} --root ${o.root}\``}
  const unfit = async (p: GroupPoint): Promise<string[]> => {
    const why: string[] = []
    for (const m of p.members) {
      const at = await promotedAt(o.root, m.path)
      if (at !== undefined ? at !== m.seq : !m.kept)
        why.push(at !== undefined ? `${m.path} promoted at ${at}` : `${m.path}@${m.seq} no longer kept (or its points unreadable: diverged or in doubt)`)
    }
    return why
  }
  if (o.groupSeq !== undefined) {
    const point = points.find((p) => p.groupSeq === o.groupSeq)
    if (!point) throw new UsageError('GROUP_NO_POINT', `group ${o.group} has no point ${o.groupSeq}: nothing was changed`, hint)
    const why = await unfit(point)
    if (why.length)
      throw new UsageError('GROUP_NO_POINT', `point ${point.groupSeq} of group ${o.group} cannot be restored: ${why.join(', ')}; nothing was changed`, hint)
    return point
  }
  for (const p of points) if ((await unfit(p)).length === 0) return p
  throw new UsageError(
    'GROUP_NO_POINT',
    `no point of group ${o.group} can be restored (a member dropped its sequence, or was promoted at another): nothing was changed`,
    hint,
  )
}

async function targetsOf(o: GroupFailoverOptions): Promise<{targets: Target[]; groupSeq?: number}> {
  if (o.planned && o.groupSeq === undefined) {
    const records = await listGroupRecords(o.root, o.group)
    const newest = records.at(-1)
    if (!newest) throw new UsageError('GROUP_NO_POINT', `group ${o.group} has no group record under ${o.root}: its members are not known; nothing was changed`)
    return {targets: newest.members.map((m) => ({replica: path.join(o.root, m.path), replicaId: m.replicaId.toString('hex')}))}
  }
  const point = await pickPoint(o)
  const records = await listGroupRecords(o.root, o.group)
  const record = records.find((r) => r.groupSeq === point.groupSeq)
  const idOf = new Map(record?.members.map((m) => [m.path, m.replicaId.toString('hex')]) ?? [])
  return {
    groupSeq: point.groupSeq,
    targets: point.members.map((m) => ({replica: path.join(o.root, m.path), seq: m.seq, replicaId: idOf.get(m.path) ?? '', committedMs: record?.committedMs})),
  }
}

/** Everything `failover` would refuse, for one member, before any member is touched. */
async function preflight(t: Target, o: GroupFailoverOptions, now: number): Promise<void> {
  const read = await readReplicaState(t.replica)
  const p = read.state?.promoted
  if (p) {
    const at = p.rollbackTo ?? p.atSeq
    // Planned: each member at its final push, so one promoted by hand elsewhere (rolled back, or not final) splits the group.
    const elsewhere = t.seq !== undefined ? at !== t.seq : p.rollbackTo !== undefined || !p.planned
    if (elsewhere || p.oldReplicaId !== t.replicaId)
      throw new UsageError(
        'USAGE',
        `${t.replica} was promoted already at sequence ${at}${p.oldReplicaId !== t.replicaId ? ' (another source than the group names)' : ''}, not at ${t.seq !== undefined ? `the group point's ${t.seq}` : 'its final push'}: nothing was changed`,
        {hint: 'fail the other members over to that point by hand (`vdrep failover <replica> --at SEQ`), or promote none'},
      )
    return
  }
  const state = checkFailoverFit(read.state, read.error, t.replica, o, now)
  if (state.replicaId !== t.replicaId)
    throw new UsageError('GROUP_MEMBER_REPLACED', `${t.replica} belongs to another source than at the group point (a new replica since): nothing was changed`, {
      hint: 'fail this member over on its own (`vdrep failover`) if it is the disk you want',
    })
  if (t.seq !== undefined && t.seq !== state.lastSeq) await (await planRollback(t.replica, state, t.seq)).close()
}

/**
 * Every member's held bundle settled, under its lock: applied if a group record names it (the
 * group committed; the receiver applies it at its next start or push anyway), else dropped.
 * Left held, it made its member miss the newest group point, and the failover went back one.
 */
async function settleMembers(o: GroupFailoverOptions): Promise<void> {
  const paths = new Set((await listGroupRecords(o.root, o.group)).flatMap((r) => r.members.map((m) => m.path)))
  for (const rel of paths) {
    const replica = path.join(o.root, rel)
    if (!(await fs.lstat(heldJournalPathFor(replica)).catch(() => undefined))) continue
    const release = await acquireReplica(replica, 'another vdrep process (vdrep serve applying a group push, a full sync, another failover)')
    try {
      await settleHeld(o.root, replica, (line) => o.log?.(line))
    } finally {
      release()
    }
  }
}

export async function failoverGroup(o: GroupFailoverOptions): Promise<GroupFailoverResult> {
  if (!isGroupName(o.group)) throw new UsageError('BAD_GROUP_NAME', `${JSON.stringify(o.group)} is not a group name`)
  const now = (o.now ?? Date.now)()
  await settleMembers(o)
  const {targets, groupSeq} = await targetsOf(o)
  for (const t of targets) await preflight(t, o, now)
  const members: FailoverResult[] = []
  for (const t of targets) {
    o.log?.(`${t.replica}: failing over${t.seq === undefined ? '' : ` at sequence ${t.seq}`}`)
    // Checked again under the member's lock: a member full-synced (or replaced) since the check
    // above holds another disk under the same sequence (group/points.ts).
    const check = (state: ReplicaState) => {
      if (t.seq === undefined || t.committedMs === undefined) return
      if (isMembersPoint(state, {committedMs: t.committedMs}, {seq: t.seq, replicaId: Buffer.from(t.replicaId, 'hex')})) return
      const done = members.map((m) => m.replica).join(', ')
      throw new UsageError(
        'GROUP_NO_POINT',
        `${t.replica} was full-synced or replaced while the group failed over: its sequence ${t.seq} is no longer group point ${groupSeq}; it was not promoted${done ? ` (promoted already: ${done})` : ''}`,
        {hint: 'choose the point again (`vdrep points --group`), and fail the members over to one point by hand if need be'},
      )
    }
    members.push(await failover(t.replica, {at: t.seq, planned: o.planned, force: o.force, settings: o.settings, now: () => now, log: o.log, check}))
  }
  return {group: o.group, ...(groupSeq !== undefined ? {groupSeq} : {}), members}
}
