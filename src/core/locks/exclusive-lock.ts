// An exclusive, non-blocking lock on an open file (the whole file, or a byte range of it):
// the kernel's flock or OFD record lock when the addon is in use, else the portable lock
// keyed by the file's identity (device and inode, so every path to one file names one lock,
// as with flock). Every lock in this folder is taken through here, so no lock is ever
// reported taken that does not exclude.

import fs from 'node:fs'

import {flock, funlock, kernelFileLocksAvailable, kernelRangeLocksAvailable, rangeLock, rangeUnlock} from './kernel-locks.js'
import {tryPortableLock} from './portable-lock.js'

export interface HeldFileLock {
  /** Drop the lock (the fd stays open; closing it drops a kernel lock too). */
  release(): void
}

export interface ByteRange {
  start: number
  length: number
}

/** Whether the locks here are the kernel's (false: the portable fallback, see portable-lock.ts). */
export function kernelLocksInUse(): boolean {
  return kernelFileLocksAvailable()
}

/**
 * Lock the file open on `fd` (or `range` of it) exclusively, without waiting: null when
 * another open file (in this process or another) holds it. The whole-file lock and a range
 * lock of one file do not conflict with each other (flock and OFD locks are separate).
 */
export async function tryLockFile(fd: number, range?: ByteRange): Promise<HeldFileLock | null> {
  if (range === undefined && kernelFileLocksAvailable()) {
    if (!flock(fd, true, true)) return null
    return {release: () => funlock(fd)}
  }
  if (range !== undefined && kernelRangeLocksAvailable()) {
    if (!rangeLock(fd, range.start, range.length, true)) return null
    return {release: () => rangeUnlock(fd, range.start, range.length)}
  }
  const st = fs.fstatSync(fd)
  const what = range === undefined ? 'file' : `range ${range.start}+${range.length}`
  return tryPortableLock(`${what} of ${st.dev}:${st.ino}`)
}
