// A consistency group's restore points on the replica host: each group record is one point in
// time across the members, naming the sequence of each; it can be restored (export --at,
// failover --at of each member at its sequence) while every member still keeps that point.
import path from 'node:path'
import {listPoints} from '../points/list.js'
import {listGroupRecords} from './store.js'

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
  const kept = new Map<string, Set<number>>()
  const keptBy = async (rel: string): Promise<Set<number>> => {
    let seqs = kept.get(rel)
    if (!seqs) {
      seqs = new Set((await listPoints(path.join(root, rel)).catch(() => ({points: []}))).points.map((p) => p.seq))
      kept.set(rel, seqs)
    }
    return seqs
  }
  const out: GroupPoint[] = []
  for (const r of records.reverse()) {
    const members: GroupPointMember[] = []
    for (const m of r.members) members.push({path: m.path, seq: m.seq, kept: (await keptBy(m.path)).has(m.seq)})
    out.push({group: r.name, groupSeq: r.groupSeq, time: new Date(r.committedMs).toISOString(), members, restorable: members.every((m) => m.kept)})
  }
  return out
}

/** For one replica: which of its sequences are group points ("db#3"), by sequence. */
export async function groupPointsOf(root: string, replica: string): Promise<Map<number, string>> {
  const rel = path.relative(root, replica)
  const out = new Map<number, string>()
  for (const r of await listGroupRecords(root)) for (const m of r.members) if (m.path === rel) out.set(m.seq, `${r.name}#${r.groupSeq}`)
  return out
}
