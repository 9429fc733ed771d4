// The kernel's own locks, through the addon: flock(2) on a whole file and open-file-
// description record locks (fcntl F_OFD_SETLK) on a byte range. Both belong to an open file
// description, not to the process, so two opens of one file in one process conflict, and the
// kernel drops them when the last fd of that description closes (a killed holder never
// leaves one behind).
//
// Without the addon these cannot lock, and they say so: they throw LOCK_UNAVAILABLE instead
// of pretending. The locks vdrep takes go through exclusive-lock.ts, which then uses the
// portable lock (portable-lock.ts) instead.

import {addon} from '../native/binding.js'
import {checkFd, describeFd, ioError} from '../native/syscall-args.js'
import {lockUnavailable} from './lock-unavailable.js'

/** Whether flock() really locks here (the addon is in use). */
export function kernelFileLocksAvailable(): boolean {
  return addon() !== undefined
}

/** Whether rangeLock() really locks here (the addon is in use and new enough to have it). */
export function kernelRangeLocksAvailable(): boolean {
  return addon()?.rangeLock !== undefined && addon()?.rangeUnlock !== undefined
}

/**
 * flock(2) on fd: shared or exclusive, blocking or not. Returns false only when
 * non-blocking and another open file description holds a conflicting lock.
 * Blocking mode blocks the whole JS thread: prefer nonBlocking and retry.
 * Throws LOCK_UNAVAILABLE without the addon.
 */
export function flock(fd: number, exclusive: boolean, nonBlocking: boolean): boolean {
  checkFd(fd)
  const binding = addon()
  if (binding === undefined) throw lockUnavailable(`cannot flock ${describeFd(fd)}`)
  try {
    return binding.flock(fd, exclusive, nonBlocking)
  } catch (err) {
    throw ioError(`cannot lock ${describeFd(fd)}`, err)
  }
}

/** Release a flock() lock on fd. Throws LOCK_UNAVAILABLE without the addon (nothing was locked). */
export function funlock(fd: number): void {
  checkFd(fd)
  const binding = addon()
  if (binding === undefined) throw lockUnavailable(`cannot unlock ${describeFd(fd)}`)
  try {
    binding.funlock(fd)
  } catch (err) {
    throw ioError(`cannot unlock ${describeFd(fd)}`, err)
  }
}

/**
 * An open-file-description record lock on [start, start+length) of fd, non-blocking: false
 * when another open file description holds a conflicting one. Separate from flock(), so it can
 * guard part of a file that is also flock()ed. Throws LOCK_UNAVAILABLE without the addon (or
 * with an addon built by an older vdrep, which lacks it).
 */
export function rangeLock(fd: number, start: number, length: number, exclusive: boolean): boolean {
  checkFd(fd)
  const binding = addon()
  if (binding?.rangeLock === undefined) throw lockUnavailable(`cannot lock a range of ${describeFd(fd)}`)
  try {
    return binding.rangeLock(fd, start, length, exclusive)
  } catch (err) {
    throw ioError(`cannot lock ${describeFd(fd)}`, err)
  }
}

/** Release a rangeLock. Throws LOCK_UNAVAILABLE where rangeLock could not lock. */
export function rangeUnlock(fd: number, start: number, length: number): void {
  checkFd(fd)
  const binding = addon()
  if (binding?.rangeUnlock === undefined) throw lockUnavailable(`cannot unlock a range of ${describeFd(fd)}`)
  try {
    binding.rangeUnlock(fd, start, length)
  } catch (err) {
    throw ioError(`cannot unlock ${describeFd(fd)}`, err)
  }
}
