// `vdrep replicas --root DIR` on the replica host: one row per replica under the root, from
// what the receiver keeps beside each (its state, its restore points, a journal) and the
// replica's own stat. Reads only and takes no lock, so it never holds up a push; a push that
// commits meanwhile shows in the next run. A replica whose files cannot be read gets a row
// that says why; the others are still listed.
import type {BigIntStats} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import {asVdrepError, UsageError} from '../errors.js'
import {journalPathFor} from '../delta/journal.js'
import {listPoints} from '../points/list.js'
import {pointsDirFor} from '../points/store.js'
import {readReplicaState, type ReplicaState} from '../receiver/replica-state.js'
import {replicaCondition, type ReplicaCondition} from './condition.js'
import {discoverReplicas} from './discover.js'
import {runningTest} from '../test-view/running.js'

export interface ReplicaPoints {
  /** Restore points, the current one (the replica) included. */
  count: number
  oldestSeq: number
  oldestTime: string
  /** Bytes the undo records keep. */
  bytes: number
  retention: string
  /** Why older points cannot be read now, or a damaged record that cut them short. */
  problem: string | null
}

export interface ReplicaSpace {
  /** Bytes allocated on the replica host (sparse files count what they hold). */
  replica: number
  points: number
  journal: number
  total: number
}

export interface ReplicaRow {
  replica: string
  /** Its path under the root (what a client's target names). */
  name: string
  replicaId: string | null
  /** Where it is replicated from, as the source said after its last proved full sync (host, disk path); null: not told. */
  source: {host: string | null; disk: string | null}
  complete: boolean | null
  state: ReplicaCondition
  reason: string | null
  diskSize: number | null
  lastSeq: number | null
  generation: number | null
  /** The current point: the last committed push or proved full sync. */
  lastCommitMs: number | null
  lastCommit: string | null
  ageSeconds: number | null
  /** The source's RPO, as it said after its last proved full sync; null: not told. */
  rpoSeconds: number | null
  rpoViolated: boolean | null
  points: ReplicaPoints | null
  /** A journal is there: a push is being received or applied, or one waits for its replay. */
  journal: boolean
  space: ReplicaSpace
  error: string | null
}

export interface ReplicasResult {
  root: string
  replicas: ReplicaRow[]
  unreadable: Array<{dir: string; reason: string}>
}

export async function listReplicas(rootArg: string, now = Date.now()): Promise<ReplicasResult> {
  const root = path.resolve(rootArg)
  const st = await fs.stat(root).catch(() => undefined)
  if (!st?.isDirectory()) throw new UsageError('ROOT_MISSING', `the root ${root} is not a folder`, {hint: 'name the folder `vdrep serve --root` uses'})
  const found = await discoverReplicas(root)
  const replicas: ReplicaRow[] = []
  for (const r of found.replicas) replicas.push(await replicaRow(root, r, now))
  return {root, replicas, unreadable: found.unreadable}
}

/** Allocated bytes of a file (0 when it is not there); a block device counts its recorded size. */
function allocated(st: BigIntStats | undefined, deviceSize = 0): number {
  if (!st) return 0
  if (st.isBlockDevice()) return deviceSize
  return Number(st.blocks) * 512
}

async function statOf(p: string): Promise<BigIntStats | undefined> {
  return fs.lstat(p, {bigint: true}).catch(() => undefined)
}

async function pointsSpace(replica: string): Promise<number> {
  const dir = pointsDirFor(replica)
  const names = await fs.readdir(dir).catch(() => [] as string[])
  let total = 0
  for (const n of names) total += allocated(await statOf(path.join(dir, n)))
  return total
}

async function replicaRow(root: string, replica: string, now: number): Promise<ReplicaRow> {
  const row: ReplicaRow = {
    replica,
    name: path.relative(root, replica),
    replicaId: null,
    source: {host: null, disk: null},
    complete: null,
    state: 'unreadable',
    reason: null,
    diskSize: null,
    lastSeq: null,
    generation: null,
    lastCommitMs: null,
    lastCommit: null,
    ageSeconds: null,
    rpoSeconds: null,
    rpoViolated: null,
    points: null,
    journal: false,
    space: {replica: 0, points: 0, journal: 0, total: 0},
    error: null,
  }
  let state: ReplicaState | undefined
  let stateError: string | undefined
  try {
    const r = await readReplicaState(replica)
    state = r.state
    stateError = r.error?.message
  } catch (err) {
    stateError = asVdrepError(err).message
  }
  const st = await statOf(replica)
  const stat = st && (st.isFile() || st.isBlockDevice()) ? st : undefined
  const journal = await statOf(journalPathFor(replica))
  row.journal = Boolean(journal?.isFile())
  row.space.replica = allocated(stat, state?.diskSize ?? 0)
  row.space.points = await pointsSpace(replica)
  row.space.journal = allocated(journal)
  row.space.total = row.space.replica + row.space.points + row.space.journal
  const testRunning = state ? (await runningTest(replica).catch(() => null)) !== null : false
  const {condition, reason} = replicaCondition({state, stateError, stat, testRunning})
  row.state = condition
  row.reason = reason
  if (!state) return row
  // As the source described itself after its last proved full sync (never used for trust).
  row.source = {host: state.source?.host || null, disk: state.source?.disk || null}
  row.replicaId = state.replicaId
  row.complete = state.complete
  row.diskSize = state.diskSize
  row.lastSeq = state.lastSeq
  row.generation = state.generation
  if (state.complete) {
    row.lastCommitMs = state.commitMs ?? state.updatedMs
    row.lastCommit = new Date(row.lastCommitMs).toISOString()
    row.ageSeconds = Math.max(0, Math.round((now - row.lastCommitMs) / 1000))
  }
  row.rpoSeconds = state.rpoSeconds ?? null
  if (row.rpoSeconds !== null && row.ageSeconds !== null) row.rpoViolated = row.ageSeconds > row.rpoSeconds
  try {
    const l = await listPoints(replica)
    const oldest = l.points[l.points.length - 1]
    row.points = {
      count: l.points.length,
      oldestSeq: oldest?.seq ?? state.lastSeq,
      oldestTime: oldest?.time ?? new Date(state.commitMs ?? state.updatedMs).toISOString(),
      bytes: l.totalBytes,
      retention: l.retention,
      problem: l.untrusted ?? l.problem ?? null,
    }
  } catch (err) {
    row.error = `restore points not read: ${asVdrepError(err).message}`
  }
  return row
}
