// One writer per replica: a claim inside this process, and an flock on `<replica>.vdrep.lock`
// across processes (two `vdrep serve`s with overlapping roots, a local full sync or push to a
// replica that a receiver, or another local sync, is writing). The kernel drops the flock
// when its holder dies, so a killed writer never leaves the replica locked.
import fs from 'node:fs'
import {LockError, UsageError} from '../errors.js'
import {flock, funlock} from '../disk/native.js'

const held = new Set<string>()

export function claimReplica(replica: string): () => void {
  if (held.has(replica)) throw new LockError(`another client is writing ${replica} through this receiver`, {hint: 'wait for it to finish'})
  held.add(replica)
  return () => held.delete(replica)
}

/** The lock file of a replica (beside it; never followed if it is a symlink). */
export function replicaLockPath(replica: string): string {
  return `${replica}.vdrep.lock`
}

/**
 * Take the cross-process lock of `replica` (exclusive, non-blocking); `other` names who holds
 * it when it is taken, for the message. Returns the release.
 */
export function lockReplicaFile(replica: string, other: string): () => void {
  const lockPath = replicaLockPath(replica)
  let fd: number
  try {
    fd = fs.openSync(lockPath, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new UsageError('PATH_OUTSIDE_ROOT', `refusing replica path ${replica}: its lock file ${lockPath} is a symlink`)
    throw err
  }
  try {
    if (!flock(fd, true, true)) throw new LockError(`${other} is writing ${replica}`, {hint: 'wait for it to finish, or stop the other writer'})
  } catch (err) {
    fs.closeSync(fd)
    throw err
  }
  return () => {
    try {
      funlock(fd)
    } finally {
      fs.closeSync(fd)
    }
  }
}
