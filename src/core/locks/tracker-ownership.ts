// The tracker's ownership of a disk's .psf: a tracker (or a `--scan`, or `init` replacing the
// file) holds an exclusive, non-blocking lock on the .psf for as long as it runs. A second one
// is refused with LockError (exit 3), naming the running tracker when its control socket
// answers. The lock belongs to an open file of its own, so it goes away with the process,
// however it ends.
//
// Pushes and full syncs do not own the .psf: they hold the disk lock (disk-lock.ts) and ask a
// running tracker for their transitions over its control socket. When none answers they only
// probe this lock (checkNoUnreachableTracker), so that a tracker whose socket is gone is not
// written around. A tracker holds the disk lock too while it starts (taken first: see the
// order in index.ts), until its control socket answers; a scan holds it throughout.
import fs from 'node:fs'
import {LockError} from '../errors.js'
import {TrackerControlClient} from '../tracker/control-client.js'
import {tryLockFile, type HeldFileLock} from './exclusive-lock.js'

export class TrackerLock {
  private constructor(
    readonly psfPath: string,
    private fd: number | null,
    private readonly lock: HeldFileLock,
  ) {}

  /**
   * Take the ownership of `disk` (canonical path) whose state file is `psfPath`; `what` names
   * the taker in messages ("tracker", "scan", "init").
   */
  static async acquire(disk: string, psfPath: string, what: string): Promise<TrackerLock> {
    let fd: number
    try {
      fd = fs.openSync(psfPath, fs.constants.O_RDONLY)
    } catch (err) {
      throw new LockError(`cannot open ${psfPath} to lock it: ${(err as Error).message}`, {cause: err})
    }
    let lock: HeldFileLock | null
    try {
      lock = await tryLockFile(fd)
    } catch (err) {
      fs.closeSync(fd)
      throw err
    }
    if (lock === null) {
      fs.closeSync(fd)
      const holder = await describeRunningTracker(disk)
      throw new LockError(
        `cannot start the ${what} for ${disk}: ${holder ?? 'another vdrep process (a tracker, a scan or a push) holds the lock on ' + psfPath}`,
        {
          hint: holder ? 'stop that tracker first (SIGTERM or Ctrl-C); only one tracker may own a disk' : 'wait for it to finish, or stop it',
        },
      )
    }
    return new TrackerLock(psfPath, fd, lock)
  }

  release(): void {
    if (this.fd === null) return
    this.lock.release()
    fs.closeSync(this.fd)
    this.fd = null
  }
}

/**
 * For a push or full sync that holds the disk lock and found no tracker answering on the
 * control socket: refuse when the .psf's ownership is held all the same. Then a tracker runs
 * whose socket is gone (removed by a temp cleaner, say); editing the .psf directly would clear
 * bits that tracker believes durable, and its later writes to those blocks would never be
 * marked. (A scan also holds the ownership, but it holds the disk lock too, so it is never the one.)
 */
export async function checkNoUnreachableTracker(disk: string, psfPath: string): Promise<void> {
  let fd: number
  try {
    fd = fs.openSync(psfPath, fs.constants.O_RDONLY)
  } catch {
    return // no .psf: PsfFile.open says so
  }
  let probe: HeldFileLock | null
  try {
    probe = await tryLockFile(fd)
    probe?.release()
  } finally {
    fs.closeSync(fd)
  }
  if (probe === null) {
    throw new LockError(`a tracker holds ${psfPath} but nothing answers on its control socket, so ${disk} cannot be pushed safely`, {
      hint: 'the socket file may have been removed; stop the tracker (SIGTERM) and start it again, or wait if it is just stopping',
    })
  }
}

/** "a tracker is running (pid 123, NBD on unix:/x)" when a control socket answers; else null. */
export async function describeRunningTracker(disk: string): Promise<string | null> {
  const client = await TrackerControlClient.tryConnect(disk, {timeoutMs: 2000}).catch(() => null)
  if (!client) return null
  try {
    const s = await client.status()
    const nbd = s.nbd.length > 0 ? `, NBD on ${s.nbd.join(' and ')}` : ''
    return `a tracker is already running for it (pid ${s.pid}${nbd})`
  } catch {
    return 'a tracker is already running for it (its control socket answers)'
  } finally {
    await client.close()
  }
}
