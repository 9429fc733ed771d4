// The one place a failure from a backend becomes an NBD error value on the wire.

import {NBD_EINVAL, NBD_EIO, NBD_ENOMEM, NBD_ENOSPC, NBD_ENOTSUP, NBD_EOVERFLOW, NBD_EPERM, NBD_ESHUTDOWN} from './constants.js'

const BY_ERRNO: Readonly<Record<string, number>> = {
  EPERM: NBD_EPERM,
  EACCES: NBD_EPERM,
  EROFS: NBD_EPERM,
  EIO: NBD_EIO,
  ENOMEM: NBD_ENOMEM,
  EINVAL: NBD_EINVAL,
  ENOSPC: NBD_ENOSPC,
  EDQUOT: NBD_ENOSPC,
  EFBIG: NBD_ENOSPC,
  EOVERFLOW: NBD_EOVERFLOW,
  ENOTSUP: NBD_ENOTSUP,
  EOPNOTSUPP: NBD_ENOTSUP,
  ESHUTDOWN: NBD_ESHUTDOWN,
}

/** Errno-style code of an error or of any error in its cause chain (at most 8 deep). */
function errnoCodeOf(err: unknown): string | undefined {
  let e: unknown = err
  for (let depth = 0; depth < 8 && e !== null && typeof e === 'object'; depth++) {
    const code = (e as {code?: unknown}).code
    if (typeof code === 'string' && code in BY_ERRNO) return code
    e = (e as {cause?: unknown}).cause
  }
  return undefined
}

/**
 * NBD error value for anything a backend threw: the errno of the error or of its cause
 * (EDQUOT and EFBIG count as ENOSPC, EROFS and EACCES as EPERM, as the spec asks),
 * otherwise EIO. Never 0.
 */
export function nbdErrorOf(err: unknown): number {
  const code = errnoCodeOf(err)
  return code === undefined ? NBD_EIO : BY_ERRNO[code]
}

/** Short lower-case text of an error for logs and structured error chunks. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}
