// One push (or full sync) of a disk at a time: an exclusive, non-blocking flock on
// `<disk>.vdrep.lock`, which the kernel drops when the holder dies, so a stale lock of a
// killed process is taken over without guessing. The holder's pid is written for the message.
import fs from 'node:fs/promises'
import {LockError} from '../errors.js'
import {flock, flockIsAdvisoryOnly} from '../disk/native.js'

export function lockPathFor(disk: string): string {
  return `${disk}.vdrep.lock`
}

export interface HeldLock {
  release(): Promise<void>
}

export async function acquireDiskLock(disk: string, what: string): Promise<HeldLock> {
  const file = lockPathFor(disk)
  const fh = await fs.open(file, 'a+', 0o600)
  let ok: boolean
  try {
    ok = flockIsAdvisoryOnly ? await pidLock(fh) : flock(fh.fd, true, true)
  } catch (err) {
    await fh.close()
    throw err
  }
  if (!ok) {
    const holder = (await fs.readFile(file, 'utf8').catch(() => '')).trim()
    await fh.close()
    throw new LockError(`another vdrep process${holder ? ` (${holder})` : ''} is already working on ${disk}`, {hint: 'wait for it to finish; a lock of a process that died is taken over automatically'})
  }
  await fh.truncate(0)
  await fh.write(`pid ${process.pid}, ${what}, since ${new Date().toISOString()}\n`, 0)
  return {
    release: async () => {
      await fh.truncate(0).catch(() => {})
      await fh.close()
    },
  }
}

/** Without flock (no native helper): the pid in the file decides; a dead pid's lock is stale. */
async function pidLock(fh: fs.FileHandle): Promise<boolean> {
  const text = (await fh.readFile('utf8')).trim()
  const pid = Number(/^pid (\d+)/.exec(text)?.[1])
  if (!pid || pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return false
  } catch {
    return true
  }
}
