// The disk lock: one push, full sync, init, or starting tracker or scan of a disk at a time.
// An exclusive, non-blocking lock on `<disk>.vdrep.lock` (exclusive-lock.ts), which goes away
// with its holder however it ends, so a killed process's lock is taken over without guessing.
// The holder writes its pid and what it does into the file, for the message of the next taker.
import fs from 'node:fs/promises'
import {LockError} from '../errors.js'
import {ensureStateFolder, statePathFor} from '../psf/state-location.js'
import {tryLockFile, type HeldFileLock} from './exclusive-lock.js'

/** `<disk>.vdrep.lock` beside the disk's `.psf` (in the state folder for a block device). */
export function diskLockPathFor(disk: string): string {
  return statePathFor(disk, '.vdrep.lock')
}

export interface HeldLock {
  release(): Promise<void>
}

/**
 * Take the disk lock of `disk` without waiting; `what` names the taker ("push", "fullsync",
 * "init", "tracker", "scan") in the file and so in the next taker's message. LockError (exit 3)
 * naming the holder when another process has it.
 */
export async function acquireDiskLock(disk: string, what: string): Promise<HeldLock> {
  const file = diskLockPathFor(disk)
  let fh: fs.FileHandle
  try {
    // The first command on a block device (init) finds no folder for it in the state folder yet.
    await ensureStateFolder(disk)
    fh = await fs.open(file, 'a+', 0o600)
  } catch (err) {
    throw new LockError(`cannot open the lock file ${file}: ${(err as Error).message}`, {cause: err})
  }
  let lock: HeldFileLock | null
  try {
    lock = await tryLockFile(fh.fd)
  } catch (err) {
    await fh.close()
    throw err
  }
  if (lock === null) {
    const holder = (await fs.readFile(file, 'utf8').catch(() => '')).trim()
    await fh.close()
    throw new LockError(`cannot start the ${what} for ${disk}: another vdrep process${holder ? ` (${holder})` : ''} is already working on it`, {
      hint: 'wait for it to finish; a lock of a process that died is taken over automatically',
    })
  }
  const held = lock
  try {
    await fh.truncate(0)
    await fh.write(`pid ${process.pid}, ${what}, since ${new Date().toISOString()}\n`, 0)
  } catch (err) {
    held.release()
    await fh.close()
    throw err
  }
  let released = false
  return {
    release: async () => {
      if (released) return // a second release must not unlock an fd number reused since
      released = true
      await fh.truncate(0).catch(() => {})
      held.release()
      await fh.close().catch(() => {})
    },
  }
}
