// An open reader pins its point: a file `pin-<seq>-<pid>-<random>.pin` in the points folder,
// locked (exclusive, non-blocking: locks/exclusive-lock.ts) for as long as the reader is open.
// Retention keeps every pinned point (and lets the byte cap wait for it), so an export or a
// test boot never sees its point merged away under it. A pin whose lock can be taken has no
// reader behind it any more (the reader died): it is removed.
import crypto from 'node:crypto'
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import {LockError} from '../errors.js'
import {tryLockFile, type HeldFileLock} from '../locks/exclusive-lock.js'
import {ensurePointsDir, pointsDirFor} from './store.js'

const PIN = /^pin-(\d{1,15})-\d+-[0-9a-f]+\.pin$/

export interface Pin {
  release(): Promise<void>
}

export async function pinPoint(replica: string, seq: number): Promise<Pin> {
  const file = path.join(await ensurePointsDir(replica), `pin-${seq}-${process.pid}-${crypto.randomBytes(6).toString('hex')}.pin`)
  const fh = await fs.open(file, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
  let lock: HeldFileLock | null = null
  try {
    lock = await tryLockFile(fh.fd)
    if (!lock) throw new LockError(`cannot lock the new pin ${file}`)
  } catch (err) {
    await fh.close()
    await fs.rm(file, {force: true})
    throw err
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

/** Sequences pinned by live readers; pins of readers that are gone are removed. */
export async function pinnedPoints(replica: string): Promise<Set<number>> {
  const dir = pointsDirFor(replica)
  const out = new Set<number>()
  const names = await fs.readdir(dir).catch(() => [] as string[])
  for (const n of names) {
    const m = PIN.exec(n)
    if (!m) continue
    const file = path.join(dir, n)
    let fh: fs.FileHandle
    try {
      fh = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW)
    } catch {
      continue // released meanwhile
    }
    try {
      const lock = await tryLockFile(fh.fd)
      if (lock) {
        lock.release()
        await fs.rm(file, {force: true})
      } else out.add(Number(m[1]))
    } finally {
      await fh.close()
    }
  }
  return out
}
