// A consistency group's restore points on the replica host: each group record is one point in
// time across the members, naming the sequence of each; it can be restored (export --at,
// failover --at of each member at its sequence) while every member still keeps that point.
//
// A sequence alone does not name the member's point: a full sync keeps the replica's push
// sequence, so a member full-synced since the group point (alone, as GROUP_MEMBER_FULL_SYNC
// says, or handed to another source) holds other contents under the sequence the record names,
// and a replica seeded afresh counts its sequences again from 0. Such a member's point is not
// the group's: the group point then mixes two instants, and is not restorable (export, test start
// and failover --group would hand the guest a state it never had).
import path from 'node:path'
import {UsageError} from '../errors.js'
import {listPoints} from '../points/list.js'
import {readReplicaState, type ReplicaState} from '../receiver/replica-state.js'
import type {GroupMember, GroupRecord} from './record.js'
import {listGroupRecords} from './store.js'

/**
 * The replica's point at `m.seq` is the one group record `r` names: the same replica, and the
 * record written after the replica's last full sync, at a sequence the full sync left behind.
 */
export function isMembersPoint(state: ReplicaState | undefined, r: Pick<GroupRecord, 'committedMs'>, m: Pick<GroupMember, 'seq' | 'replicaId'>): boolean {
  if (!state || state.replicaId !== m.replicaId.toString('hex')) return false
  // A replica whose last full sync predates the record of it cannot say; taken as before.
  return state.fullSync === undefined || (m.seq > state.fullSync.seq && r.committedMs >= state.fullSync.ms)
}

async function stateOf(replica: string): Promise<ReplicaState | undefined> {
  return (await readReplicaState(replica).catch(() => ({state: undefined}))).state
}

export interface GroupPointMember {
  /** The replica, relative to the root. */
  path: string
  seq: number
  /** The member replica still keeps this point (its retention has not dropped it). */
  kept: boolean
}

export interface GroupPoint {
  group: string
  groupSeq: number
  /** When the group committed, ISO 8601. */
  time: string
  members: GroupPointMember[]
  /** Every member keeps its point: the group can be restored to it. */
  restorable: boolean
}

/** The group's points, newest first. */
export async function listGroupPoints(root: string, name: string): Promise<GroupPoint[]> {
  const records = await listGroupRecords(root, name)
  const kept = new Map<string, {seqs: Set<number>; state: ReplicaState | undefined}>()
  const keptBy = async (rel: string) => {
    let k = kept.get(rel)
    if (!k) {
      const replica = path.join(root, rel)
      const seqs = new Set((await listPoints(replica).catch(() => ({points: []}))).points.map((p) => p.seq))
      kept.set(rel, (k = {seqs, state: await stateOf(replica)}))
    }
    return k
  }
  const out: GroupPoint[] = []
  for (const r of records.reverse()) {
    const members: GroupPointMember[] = []
    for (const m of r.members) {
      const k = await keptBy(m.path)
      members.push({path: m.path, seq: m.seq, kept: k.seqs.has(m.seq) && isMembersPoint(k.state, r, m)})
    }
    out.push({group: r.name, groupSeq: r.groupSeq, time: new Date(r.committedMs).toISOString(), members, restorable: members.every((m) => m.kept)})
  }
  return out
}

/** For one replica: which of its sequences are group points ("db#3"), by sequence. */
export async function groupPointsOf(root: string, replica: string): Promise<Map<number, string>> {
  const rel = path.relative(root, replica)
  const state = await stateOf(replica)
  const out = new Map<number, string>()
  for (const r of await listGroupRecords(root))
    for (const m of r.members) if (m.path === rel && isMembersPoint(state, r, m)) out.set(m.seq, `${r.name}#${r.groupSeq}`)
  return out
}

/**
 * The group point to read (`test start --group`, `export --group`): `groupSeq`, or the newest one
 * every member keeps; refused (GROUP_NO_POINT) when a member no longer keeps its sequence.
 */
export async function readableGroupPoint(root: string, group: string, groupSeq?: number): Promise<GroupPoint> {
  const points = await listGroupPoints(root, group)
  const hint = {hint: `list them with \`vdrep points --group ${group} --root ${root}\``}
  const point = groupSeq === undefined ? points.find((p) => p.restorable) : points.find((p) => p.groupSeq === groupSeq)
  if (!point)
    throw new UsageError(
      'GROUP_NO_POINT',
      groupSeq === undefined ? `group ${group} has no point every member keeps under ${root}` : `group ${group} has no point ${groupSeq}`,
      hint,
    )
  const gone = point.members.filter((m) => !m.kept).map((m) => `${m.path}@${m.seq}`)
  if (gone.length) throw new UsageError('GROUP_NO_POINT', `point ${point.groupSeq} of group ${group} cannot be read: ${gone.join(', ')} no longer kept`, hint)
  return point
}
