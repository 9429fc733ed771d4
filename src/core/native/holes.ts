// Sparse files: punching holes, writing zeros where a hole cannot be punched, and finding
// data and holes (SEEK_DATA/SEEK_HOLE). Without the addon punchHole returns false (zeroRange
// then writes zeros: same bytes, more space used) and everything before the end is data
// (correct, just not sparse-aware).

import fs from 'node:fs'
import {promisify} from 'node:util'

import {DiskIoError, UsageError} from '../errors.js'
import {addon} from './binding.js'
import {blockDeviceSize} from './block-device.js'
import {checkFd, checkOffset, describeFd, ioError} from './syscall-args.js'

/** Zeros are written in chunks of this size when a hole cannot be punched. */
export const ZERO_CHUNK = 1024 * 1024

/** Size of what fd refers to; fstat says 0 for block devices, so ask the device. */
function sizeOfFd(fd: number): number {
  const st = fs.fstatSync(fd)
  return st.isBlockDevice() ? blockDeviceSize(fd) : st.size
}

/**
 * Deallocate [offset, offset+length) so it reads as zeros, keeping the file size
 * (FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE). Returns false when the filesystem cannot
 * punch holes or the addon is missing: the caller must then write zeros (see zeroRange).
 */
export function punchHole(fd: number, offset: number, length: number): boolean {
  checkFd(fd)
  checkOffset('offset', offset)
  checkOffset('length', length)
  const binding = addon()
  if (binding === undefined) return false
  try {
    return binding.punchHole(fd, offset, length)
  } catch (err) {
    throw ioError(`cannot punch a hole in ${describeFd(fd)} at ${offset} (+${length})`, err)
  }
}

/**
 * The punch. On a block device the kernel turns it into a zero-out that either makes the range
 * read back as zeros (a loop device's file punched, a SCSI WRITE SAME, an SSD's zeroing
 * discard) or fails (BLKDEV_ZERO_NOFALLBACK): never a discard that may leave old data. A range
 * it refuses (EINVAL: not aligned to the logical block size, as the last block of a disk whose
 * size is no multiple of it) is then written as zeros like any range that cannot be punched.
 */
function punchOrZeroOut(fd: number, offset: number, length: number, device: boolean): boolean {
  try {
    return punchHole(fd, offset, length)
  } catch (err) {
    if (device && ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'EINVAL') return false
    throw err
  }
}

let zeros: Buffer | undefined
const writeAsync = promisify(fs.write)

/**
 * Make [offset, offset+length) read as zeros: punch a hole, or failing that write zeros in
 * 1 MiB chunks. Like the punch it never grows a regular file: the part of the range past
 * its end is left alone (a block device's size is fixed anyway).
 */
export async function zeroRange(fd: number, offset: number, length: number): Promise<void> {
  if (length === 0) return
  const st = fs.fstatSync(fd)
  if (punchOrZeroOut(fd, offset, length, st.isBlockDevice())) return
  let end = offset + length
  if (st.isFile()) end = Math.min(end, st.size)
  zeros ??= Buffer.alloc(ZERO_CHUNK)
  for (let pos = offset; pos < end;) {
    const n = Math.min(ZERO_CHUNK, end - pos)
    try {
      const {bytesWritten} = await writeAsync(fd, zeros, 0, n, pos)
      // A write of 0 bytes (end of a device) would loop forever.
      if (bytesWritten === 0) throw Object.assign(new Error('wrote 0 bytes'), {code: 'EIO'})
      pos += bytesWritten
    } catch (err) {
      throw ioError(`cannot write zeros to ${describeFd(fd)} at ${pos}`, err)
    }
  }
}

/**
 * Offset of the first data at or after `offset`, or -1 when there is none (offset at or
 * past the end). Without the addon, or where the kernel has no SEEK_DATA, everything
 * before the end is data, so this is `offset` itself.
 */
export function seekData(fd: number, offset: number): number {
  return seek(fd, offset, 'data')
}

/**
 * Offset of the first hole at or after `offset` (the end of the file counts as a hole), or
 * -1 when offset is at or past the end. Fallback: the end of the file.
 */
export function seekHole(fd: number, offset: number): number {
  return seek(fd, offset, 'hole')
}

function seek(fd: number, offset: number, what: 'data' | 'hole'): number {
  checkFd(fd)
  checkOffset('offset', offset)
  const binding = addon()
  if (binding !== undefined) {
    try {
      return what === 'data' ? binding.seekData(fd, offset) : binding.seekHole(fd, offset)
    } catch (err) {
      // EINVAL: a kernel without SEEK_DATA/SEEK_HOLE; answer like the fallback.
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') {
        throw ioError(`cannot seek ${what} in ${describeFd(fd)} from ${offset}`, err)
      }
    }
  }
  let size: number
  try {
    size = sizeOfFd(fd)
  } catch (err) {
    if (err instanceof DiskIoError || err instanceof UsageError) throw err
    throw ioError(`cannot stat ${describeFd(fd)}`, err)
  }
  if (offset >= size) return -1
  return what === 'data' ? offset : size
}
