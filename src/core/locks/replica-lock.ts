// The replica lock: one writer per replica. A claim inside this process, and an exclusive
// lock on `<replica>.vdrep.lock` across processes (two `vdrep serve`s with overlapping roots,
// a local full sync or push to a replica that a receiver, or another local sync, is writing).
// The lock goes away with its holder, so a killed writer never leaves the replica locked.
import fs from 'node:fs'
import {LockError, UsageError} from '../errors.js'
import {tryLockFile, type HeldFileLock} from './exclusive-lock.js'

const held = new Set<string>()

/**
 * The in-process claim: one writer per replica among this process's sessions (vdrep serve's
 * clients, or a local target's receivers). The one set of claims in the process.
 */
export function claimReplica(replica: string): () => void {
  if (held.has(replica)) throw new LockError(`another client is writing ${replica} through this receiver`, {hint: 'wait for it to finish'})
  held.add(replica)
  return () => held.delete(replica)
}

export interface ReplicaLockOptions {
  /** false: a compare-only session, which writes nothing: a missing lock file is not created (and nothing is locked). */
  create?: boolean
}

/** The lock file of a replica (beside it; never followed if it is a symlink). */
export function replicaLockPath(replica: string): string {
  return `${replica}.vdrep.lock`
}

/**
 * Take the cross-process lock of `replica` (exclusive, non-blocking); `other` names who holds
 * it when it is taken, for the message. Returns the release.
 */
export async function lockReplicaFile(replica: string, other: string, opts: ReplicaLockOptions = {}): Promise<() => void> {
  const lockPath = replicaLockPath(replica)
  let fd: number
  try {
    fd = fs.openSync(lockPath, fs.constants.O_RDWR | (opts.create === false ? 0 : fs.constants.O_CREAT) | fs.constants.O_NOFOLLOW, 0o600)
  } catch (err) {
    // A reader that may write nothing (a compare-only session): no lock file means no writer has
    // ever locked this replica; there is nothing to wait for, and no file is made for it.
    if (opts.create === false && (err as NodeJS.ErrnoException).code === 'ENOENT') return () => {}
    if ((err as NodeJS.ErrnoException).code === 'ELOOP')
      throw new UsageError('PATH_OUTSIDE_ROOT', `refusing replica path ${replica}: its lock file ${lockPath} is a symlink`)
    throw err
  }
  let lock: HeldFileLock | null
  try {
    lock = await tryLockFile(fd)
    if (lock === null) throw new LockError(`${other} is writing ${replica}`, {hint: 'wait for it to finish, or stop the other writer'})
  } catch (err) {
    fs.closeSync(fd)
    throw err
  }
  const taken = lock
  let released = false
  return () => {
    if (released) return // a second release must not unlock an fd number reused since
    released = true
    try {
      taken.release()
    } finally {
      fs.closeSync(fd)
    }
  }
}

/**
 * Both: the in-process claim first (so a second client of this process meanwhile is refused at
 * once, with its own message), then the cross-process lock. Returns the release of both.
 */
export async function acquireReplica(replica: string, other: string, opts: ReplicaLockOptions = {}): Promise<() => void> {
  const unclaim = claimReplica(replica)
  let unlock: () => void
  try {
    unlock = await lockReplicaFile(replica, other, opts)
  } catch (err) {
    unclaim()
    throw err
  }
  return () => {
    unlock()
    unclaim()
  }
}
