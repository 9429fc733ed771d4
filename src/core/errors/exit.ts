// Anything thrown -> a VdrepError -> an exit code. The exit code comes from the registry by the
// error's code; an errno alone never decides one (a full disk is "replica full" only when the
// receiver, which knows it wrote the replica host, says so: see receiver/session-error.ts).
import {ExitCode, type ExitCodeValue} from './exit-codes.js'
import {LocalFullError, VdrepError} from './classes.js'
import {exitCodeOfCode} from './registry.js'

/** The one place that maps any thrown value to an exit code. */
export function exitCodeOf(err: unknown): ExitCodeValue {
  return err instanceof VdrepError ? exitCodeOfCode(err.code) : ExitCode.FAILURE
}

/** The errno code (ENOSPC, EIO, ...) of an error or of the first cause in its chain that has one. */
export function errnoOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 8; e = (e as {cause?: unknown}).cause, depth++) {
    // vdrep's own codes never start with E (the registry test checks it), errnos always do.
    const code = (e as NodeJS.ErrnoException).code
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code
  }
  return undefined
}

/** A filesystem out of space (or quota). */
export function isNoSpace(err: unknown): boolean {
  const code = errnoOf(err)
  return code === 'ENOSPC' || code === 'EDQUOT'
}

/**
 * Turn anything thrown on this host into a VdrepError, keeping the original as the cause. A
 * full filesystem here is LOCAL_FULL naming the file (when Node says which), never REPLICA_FULL.
 */
export function asVdrepError(err: unknown): VdrepError {
  if (err instanceof VdrepError) return err
  const e = err as NodeJS.ErrnoException | undefined
  const message = e?.message ?? String(err)
  if (isNoSpace(err)) {
    return new LocalFullError(`no space left on this host${e?.path ? ` for ${e.path}` : ''}: ${message}`, {
      cause: err,
      hint: 'free space on this host (not the replica host) and run the command again',
    })
  }
  if (errnoOf(err) !== undefined) return new VdrepError('SYSTEM_ERROR', message, {cause: err})
  return new VdrepError('INTERNAL', message, {cause: err})
}
