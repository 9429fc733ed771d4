// The .psf header lock: one header update at a time across processes (a push and a tracker
// share the file). Two that both read slot A's header and wrote slot B would each have read
// back their own write, and the first one's update would be lost without a word. An exclusive
// lock on the two header slots (an OFD record lock with the addon, not flock: the tracker owns
// the whole file through flock while it runs); held for one write and its fdatasync, so it is
// waited for a little at most. The last lock in the order (index.ts): nothing is taken while
// it is held.
import {LockError} from '../errors.js'
import {tryLockFile, type ByteRange} from './exclusive-lock.js'

/** How long a header update waits for another process's before it gives up. */
export const HEADER_LOCK_WAIT_MS = 10_000

/** Lock `slots` of the .psf open on `fd` (at `psfPath`), waiting up to HEADER_LOCK_WAIT_MS; returns the release. */
export async function lockHeaderSlots(fd: number, psfPath: string, slots: ByteRange, waitMs = HEADER_LOCK_WAIT_MS): Promise<() => void> {
  const started = Date.now()
  for (;;) {
    const lock = await tryLockFile(fd, slots)
    if (lock !== null) return () => lock.release()
    if (Date.now() - started > waitMs) {
      throw new LockError(`the header of ${psfPath} stayed locked by another process for ${waitMs / 1000} s`, {
        hint: "another vdrep process is stuck updating this disk's state file; find it with `fuser`",
      })
    }
    await new Promise((r) => setTimeout(r, 1))
  }
}
