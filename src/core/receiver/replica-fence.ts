// Whose is this replica, and did it move on without vdrep? Asked by both sessions (full sync
// and delta) before anything is written. A replica owned by another source (REPLICA_FOREIGN),
// or written since its last commit by anything but vdrep, or held open by another program now
// (REPLICA_DIVERGED), is refused unless the client's hello says the user chose to overwrite it
// (TAKE_OVER_REPLICA, DISCARD_REPLICA_CHANGES): never by a fallback, never from cron.
// The commit chain (a random id per proved full sync and per committed push, on both sides)
// tells a record that is not the replica's last one: that alone is doubt on the source's side
// (a restored or copied .psf), so a delta is refused and a full sync, which proves everything,
// may run.
import type fs from 'node:fs/promises'
import {ReplicaDivergedError, ReplicaForeignError, ReplicaPromotedError} from '../errors.js'
import {kernelRangeLocksAvailable, rangeLock, rangeUnlock} from '../locks/index.js'
import {HelloFlag, type Hello} from '../protocol/messages.js'
import type {ReplicaState} from './replica-state.js'

export type Fence = {code: 'REPLICA_FOREIGN' | 'REPLICA_DIVERGED' | 'REPLICA_PROMOTED'; reason: string}

const ZERO_COMMIT = Buffer.alloc(16)

/**
 * Another open file description holds a record lock on the replica (qemu keeps OFD locks on
 * the images it runs): probed with a non-blocking exclusive OFD lock on the whole file, let go
 * at once. Without the addon nothing can be probed, and nothing is claimed.
 */
export function heldOpenByAnother(fh: fs.FileHandle): boolean {
  if (!kernelRangeLocksAvailable()) return false
  if (!rangeLock(fh.fd, 0, 0, true)) return true
  rangeUnlock(fh.fd, 0, 0)
  return false
}

/** Why the replica must not be written for this hello, or null. `fh`: the replica, when it exists. */
export function replicaFence(
  hello: Hello,
  state: ReplicaState | undefined,
  fh: fs.FileHandle | undefined,
  st: {size: bigint; mtimeNs: bigint; ctimeNs: bigint} | undefined,
): Fence | null {
  // First: a promoted replica is a source now, whoever asks and whatever else is true of it.
  if (state?.promoted) return promotedFence(state)
  if (fh && heldOpenByAnother(fh)) {
    return {code: 'REPLICA_DIVERGED', reason: 'the replica is open by another program (it holds a lock on it: a VM running from it?)'}
  }
  if (!state) return null // a new replica, or a seed: a full sync proves it
  if (state.replicaId !== hello.replicaId.toString('hex')) {
    return {
      code: 'REPLICA_FOREIGN',
      reason: `the replica belongs to another source (replica id ${state.replicaId}, this disk's is ${hello.replicaId.toString('hex')})`,
    }
  }
  if (state.diverged)
    return {
      code: 'REPLICA_DIVERGED',
      reason: 'the replica was written by something else while the receiver was down (found when an interrupted push was replayed)',
    }
  // Its stat is recorded at each commit: only a complete replica has one to compare.
  if (state.complete && st && (Number(st.size) !== state.size || st.mtimeNs.toString() !== state.mtimeNs || st.ctimeNs.toString() !== state.ctimeNs)) {
    return {code: 'REPLICA_DIVERGED', reason: 'the replica was written outside vdrep since its last commit (its size, mtime or ctime changed)'}
  }
  return null
}

function promotedFence(state: ReplicaState): Fence {
  const p = state.promoted as NonNullable<ReplicaState['promoted']>
  const when = new Date(p.ms).toISOString()
  const at = p.rollbackTo !== undefined ? `rolled back to point ${p.rollbackTo}` : `at sequence ${p.atSeq}`
  return {
    code: 'REPLICA_PROMOTED',
    reason: `the replica was promoted by a failover at ${when} (epoch ${p.epoch}, ${at}${p.planned ? ', planned' : ''}): it is a source now, with its own record, and takes nothing from its old source (replica id ${p.oldReplicaId})`,
  }
}

/** Whether the hello's commit id is one the replica knows as its last (or the one before: a client that lost the last answer). */
export function chainMatches(hello: Hello, state: ReplicaState): boolean {
  if (!state.commit || hello.lastCommit.equals(ZERO_COMMIT)) return true // no chain on one side yet (an older vdrep wrote it)
  const last = hello.lastCommit.toString('hex')
  return last === state.commit || last === state.prevCommit
}

/** Throw the fence unless the hello carries the user's choice to overwrite it. */
export function enforceFence(hello: Hello, fence: Fence | null, log: (text: string) => void): void {
  if (!fence) return
  // No flag lifts this one: cron's --take-over-replica or --discard-replica-changes must never
  // overwrite a disk a VM now runs from. Failing back is the promoted side's `vdrep reprotect`.
  if (fence.code === 'REPLICA_PROMOTED')
    throw new ReplicaPromotedError(`${fence.reason}; nothing was written`, {
      hint: "to fail back, run `vdrep reprotect <replica> --to <this host>:<this disk>` on the replica host (it ships only what changed on either side); stop this disk's pushes meanwhile",
    })
  if (fence.code === 'REPLICA_FOREIGN') {
    if (hello.flags & HelloFlag.TAKE_OVER_REPLICA) return log(`taking over: ${fence.reason}`)
    throw new ReplicaForeignError(`${fence.reason}; nothing was written`, {
      hint: 'if this disk is to own the replica from now on, run `vdrep fullsync --take-over-replica` (the replica is overwritten); otherwise give this disk another target',
    })
  }
  if (hello.flags & HelloFlag.DISCARD_REPLICA_CHANGES) return log(`discarding the replica's changes: ${fence.reason}`)
  throw new ReplicaDivergedError(`${fence.reason}; nothing was written`, {
    hint: 'run `vdrep verify <disk>` on the protected host to count and list the blocks that changed (it writes nothing); if the replica was failed over, keep it; to overwrite it from this disk, run `vdrep fullsync --discard-replica-changes` (its changes are lost)',
  })
}
