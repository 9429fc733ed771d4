// Setting a replica's retention policy on the replica host (`vdrep points --retention`): the
// policy is checked, recorded in the replica's state by the one writer (the replica lock is
// taken, as a receiver would), and applied at once.
import path from 'node:path'
import {ReplicaForeignError, StateError} from '../errors.js'
import {acquireReplica} from '../locks/index.js'
import {readReplicaState, writeReplicaState} from '../receiver/replica-state.js'
import {resolveReplicaPath} from '../receiver/replica-path.js'
import {enforceRetention, type PruneResult} from './prune.js'
import {parseRetention} from './retention.js'

/** The replica a command names: under `root` as the receiver resolves it, or the path itself. */
export async function replicaFromArg(arg: string, root?: string): Promise<string> {
  if (root === undefined) return path.resolve(arg)
  const rootAbs = path.resolve(root)
  const rel = path.isAbsolute(arg) ? path.relative(rootAbs, arg) : arg
  return resolveReplicaPath(rootAbs, rel)
}

/** `owner`: the replica id a remote client asked with; checked again under the lock (a take-over may have come between). */
export async function setRetention(replica: string, spec: string, nowMs = Date.now(), owner?: string): Promise<PruneResult | undefined> {
  parseRetention(spec) // refused before anything is locked or written
  const release = await acquireReplica(replica, 'another vdrep process (vdrep serve, or a local push or full sync)')
  try {
    const {state, error} = await readReplicaState(replica)
    if (error) throw error
    if (!state) throw new StateError('POINT_UNTRUSTED', `${replica} has no vdrep state: it is not a replica, or was never synced`)
    if (owner !== undefined && state.replicaId !== owner) throw new ReplicaForeignError(`${replica} belongs to another source (its replica id differs)`)
    const next = {...state, retention: spec.trim()}
    await writeReplicaState(replica, next)
    return next.complete ? await enforceRetention(replica, next, nowMs) : undefined
  } finally {
    release()
  }
}

/**
 * The source's own description of itself, sent after a proved full sync (DESCRIBE_SOURCE):
 * its host and disk path and RPO are recorded for `vdrep replicas`, and the retention chosen
 * at `vdrep init --retention` becomes the replica's policy only when it has none yet (a policy
 * set since, on either host, is never overwritten). Under the replica lock; the owner is checked
 * again under it.
 */
export async function recordSource(
  replica: string,
  owner: string,
  d: {host: string; disk: string; rpoSeconds: number; retention: string},
  nowMs = Date.now(),
): Promise<PruneResult | undefined> {
  const spec = d.retention.trim()
  if (spec !== '') parseRetention(spec)
  const release = await acquireReplica(replica, 'another vdrep process (vdrep serve, or a local push or full sync)')
  try {
    const {state, error} = await readReplicaState(replica)
    if (error) throw error
    if (!state) throw new StateError('POINT_UNTRUSTED', `${replica} has no vdrep state: it is not a replica, or was never synced`)
    if (state.replicaId !== owner) throw new ReplicaForeignError(`${replica} belongs to another source (its replica id differs)`)
    const adopt = spec !== '' && state.retention === undefined
    const next = {...state, source: {host: d.host, disk: d.disk}, rpoSeconds: d.rpoSeconds, ...(adopt ? {retention: spec} : {})}
    await writeReplicaState(replica, next)
    return adopt && next.complete ? await enforceRetention(replica, next, nowMs) : undefined
  } finally {
    release()
  }
}
