// One owner per disk: a tracker (or a `--scan`) holds a non-blocking exclusive flock on
// the disk's .psf for as long as it runs. A second one is refused with LockError (exit 3),
// naming the running tracker when its control socket answers. The lock belongs to an open
// file description of its own, so it goes away with the process, however it ends.
//
// Pushes and full syncs lock `<disk>.vdrep.lock` instead (src/core/sync/push-lock.ts); one
// that runs without a tracker edits the bitmaps in the .psf itself. So a tracker takes that
// lock too while it starts (until its control socket answers, after which a push talks to
// it), and a scan holds it throughout.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import {LockError} from '../errors.js'
import {flock, flockIsAdvisoryOnly} from '../disk/native.js'
import {TrackerControlClient} from './control-client.js'

export class TrackerLock {
  private constructor(
    readonly psfPath: string,
    private fd: number | null,
  ) {}

  /**
   * Take the lock for `disk` (canonical path) whose state file is `psfPath`; `what` names
   * the taker in messages ("tracker", "scan"). Without the native addon flock cannot lock,
   * so a live control socket is the only sign of a running tracker.
   */
  static async acquire(disk: string, psfPath: string, what: string): Promise<TrackerLock> {
    let fd: number
    try {
      fd = fs.openSync(psfPath, fs.constants.O_RDONLY)
    } catch (err) {
      throw new LockError(`cannot open ${psfPath} to lock it: ${(err as Error).message}`, {cause: err})
    }
    let got: boolean
    try {
      got = flock(fd, true, true)
    } catch (err) {
      fs.closeSync(fd)
      throw err
    }
    if (!got || flockIsAdvisoryOnly) {
      const holder = await describeRunningTracker(disk)
      if (!got || holder) {
        fs.closeSync(fd)
        throw new LockError(`cannot start the ${what} for ${disk}: ${holder ?? 'another vdrep process (a tracker, a scan or a push) holds the lock on ' + psfPath}`, {
          hint: holder ? 'stop that tracker first (SIGTERM or Ctrl-C); only one tracker may own a disk' : 'wait for it to finish, or stop it',
        })
      }
    }
    return new TrackerLock(psfPath, fd)
  }

  release(): void {
    if (this.fd === null) return
    fs.closeSync(this.fd) // closing the only fd of the description drops the flock
    this.fd = null
  }
}

/**
 * For a push or full sync that holds the disk lock and found no tracker answering on the
 * control socket: refuse when the .psf's flock is held all the same. Then a tracker runs whose
 * socket is gone (removed by a temp cleaner, say); editing the .psf directly would clear bits
 * that tracker believes durable, and its later writes to those blocks would never be marked.
 * (A scan also holds that flock, but it holds the disk lock too, so it is never the one.)
 */
export function checkNoUnreachableTracker(disk: string, psfPath: string): void {
  if (flockIsAdvisoryOnly) return
  let fd: number
  try {
    fd = fs.openSync(psfPath, fs.constants.O_RDONLY)
  } catch {
    return // no .psf: PsfFile.open says so
  }
  let free: boolean
  try {
    free = flock(fd, true, true)
  } finally {
    fs.closeSync(fd) // drops the flock if it was taken
  }
  if (!free) {
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

/** `<disk>.vdrep.lock`, the lock pushes and full syncs take (same path as push-lock.ts). */
export function pushLockPathFor(disk: string): string {
  return `${disk}.vdrep.lock`
}

export interface PushLock {
  release(): Promise<void>
}

/** Take the push lock of `disk` without waiting; LockError naming the holder when a push runs. */
export async function acquirePushLock(disk: string, what: string): Promise<PushLock> {
  const file = pushLockPathFor(disk)
  let fh: fsp.FileHandle
  try {
    fh = await fsp.open(file, 'a+', 0o600)
  } catch (err) {
    throw new LockError(`cannot open the lock file ${file}: ${(err as Error).message}`, {cause: err})
  }
  let got: boolean
  try {
    got = flock(fh.fd, true, true)
  } catch (err) {
    await fh.close()
    throw err
  }
  if (!got) {
    const holder = (await fsp.readFile(file, 'utf8').catch(() => '')).trim()
    await fh.close()
    throw new LockError(`cannot start the ${what} for ${disk}: a push or full sync${holder ? ` (${holder})` : ''} is working on it`, {
      hint: 'wait for it to finish, then try again',
    })
  }
  await fh.truncate(0)
  await fh.write(`pid ${process.pid}, ${what}, since ${new Date().toISOString()}\n`, 0)
  return {
    release: async () => {
      await fh.truncate(0).catch(() => {})
      await fh.close().catch(() => {})
    },
  }
}
