// The size of a block device (fstat says 0 for one): ioctl BLKGETSIZE64 through the addon,
// or `blockdev --getsize64` (util-linux) without it.

import {execFileSync} from 'node:child_process'
import fs from 'node:fs'

import {DiskIoError, UsageError} from '../errors.js'
import {addon} from './binding.js'
import {checkFd, describeFd, ioError} from './syscall-args.js'

/** Size in bytes of the block device open on fd (ioctl BLKGETSIZE64, or `blockdev`). */
export function blockDeviceSize(fd: number): number {
  checkFd(fd)
  if (!fs.fstatSync(fd).isBlockDevice()) {
    throw new UsageError('NOT_BLOCK_DEVICE', `${describeFd(fd)} is not a block device`)
  }
  const binding = addon()
  if (binding === undefined) {
    // /proc/<pid>/fd/N reopens exactly the device we hold, even if its node was renamed.
    return blockdevGetSize(`/proc/${process.pid}/fd/${fd}`, describeFd(fd))
  }
  try {
    return binding.blockDeviceSize(fd)
  } catch (err) {
    throw ioError(`cannot get the size of block device ${describeFd(fd)}`, err)
  }
}

/** Size in bytes of the block device at path. */
export function blockDeviceSizeOfPath(devicePath: string): number {
  let st: fs.Stats
  try {
    st = fs.statSync(devicePath)
  } catch (err) {
    throw ioError(`cannot stat ${devicePath}`, err)
  }
  if (!st.isBlockDevice()) throw new UsageError('NOT_BLOCK_DEVICE', `${devicePath} is not a block device`)
  if (addon() === undefined) return blockdevGetSize(devicePath, devicePath)
  let fd: number
  try {
    fd = fs.openSync(devicePath, fs.constants.O_RDONLY)
  } catch (err) {
    throw ioError(`cannot open block device ${devicePath}`, err)
  }
  try {
    return blockDeviceSize(fd)
  } finally {
    fs.closeSync(fd)
  }
}

function blockdevGetSize(devicePath: string, label: string): number {
  let out: string
  try {
    out = execFileSync('blockdev', ['--getsize64', devicePath], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
  } catch (err) {
    const e = err as NodeJS.ErrnoException & {stderr?: string}
    const why = e.code === 'ENOENT' ? 'blockdev (util-linux) is not installed' : e.stderr?.trim() || e.message
    throw new DiskIoError(`cannot get the size of block device ${label}: ${why}`, {cause: err})
  }
  const size = Number(out.trim())
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new DiskIoError(`cannot get the size of block device ${label}: blockdev printed ${JSON.stringify(out)}`)
  }
  return size
}
