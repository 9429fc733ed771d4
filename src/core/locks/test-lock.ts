// The test lock: one test boot per replica. An exclusive lock on `<replica>.vdrep-test/lock`,
// held by the `vdrep test start` process for as long as its test runs, so it goes away with
// the process however it ends: a folder whose lock can be taken is a leftover of a killed test.
// The folder is made 0700 (the side file holds the guest's writes); a symlink or a file in its
// place is refused.
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import {LockError, UsageError} from '../errors.js'
import {tryLockFile, type HeldFileLock} from './exclusive-lock.js'

export interface HeldTestLock {
  /** Remove the lock file, then drop the lock (the folder is the caller's to remove first). */
  release(): Promise<void>
}

async function ensureDir(dir: string): Promise<void> {
  await fs.mkdir(dir, {mode: 0o700}).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err
  })
  const st = await fs.lstat(dir)
  if (!st.isDirectory()) throw new UsageError('PATH_OUTSIDE_ROOT', `refusing test folder ${dir}: it is not a directory (a symlink?)`)
}

/** Take the test lock of the folder `dir`, or null when a live test holds it. */
export async function tryLockTest(dir: string): Promise<HeldTestLock | null> {
  await ensureDir(dir)
  const file = path.join(dir, 'lock')
  const fh = await fs.open(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600)
  let lock: HeldFileLock | null = null
  try {
    lock = await tryLockFile(fh.fd)
    // Locked a file another test's stop unlinked meanwhile: that is no lock on the folder we name.
    const [a, b] = lock ? await Promise.all([fh.stat(), fs.lstat(file).catch(() => null)]) : []
    if (lock && (!b || a!.ino !== b.ino || a!.dev !== b.dev)) {
      lock.release()
      lock = null
      throw new LockError(`the test folder ${dir} changed while it was being locked`, {hint: 'run the command again'})
    }
  } catch (err) {
    await fh.close()
    throw err
  }
  if (!lock) {
    await fh.close()
    return null
  }
  const held = lock
  return {
    release: async () => {
      await fs.rm(file, {force: true})
      held.release()
      await fh.close()
    },
  }
}
