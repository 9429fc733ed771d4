// The checks and error wrapping every addon call shares: arguments are refused before they
// reach a system call, and a failed call names the file (not just "fd 7") and keeps the
// exit code of a full filesystem.

import fs from 'node:fs'

import {DiskIoError, isNoSpace, LocalFullError, UsageError} from '../errors.js'

export function checkFd(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0) throw new UsageError('BAD_ARGUMENT', `not a file descriptor: ${fd}`)
}

export function checkOffset(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new UsageError('BAD_ARGUMENT', `${name} must be a non-negative integer, got ${value}`)
  }
}

/** The path an fd was opened with, for messages; falls back to "fd N". */
export function describeFd(fd: number): string {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`)
  } catch {
    return `fd ${fd}`
  }
}

/**
 * Wrap a system-call failure, naming the file. A full filesystem is LOCAL_FULL: this code runs
 * on both hosts and cannot tell which it is on; the receiver turns it into REPLICA_FULL.
 */
export function ioError(what: string, err: unknown): Error {
  const detail = (err as Error | undefined)?.message ?? String(err)
  if (isNoSpace(err)) return new LocalFullError(`${what}: ${detail}`, {cause: err})
  return new DiskIoError(`${what}: ${detail}`, {cause: err})
}
