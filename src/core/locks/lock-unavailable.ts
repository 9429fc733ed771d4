// The error for a lock that cannot be taken at all on this machine (as opposed to one another
// process holds, which is LockError, exit 3): never answered by pretending the lock was taken.

import {VdrepError} from '../errors.js'

export const LOCK_UNAVAILABLE = 'LOCK_UNAVAILABLE' as const

export function lockUnavailable(what: string, cause?: unknown): VdrepError {
  return new VdrepError(LOCK_UNAVAILABLE, `${what}: no lock that excludes other processes is available here`, {
    cause,
    hint: 'rebuild the native addon (npm rebuild vdrep) and unset VDREP_NO_NATIVE; without it vdrep locks through abstract unix sockets, which need Linux',
  })
}
