// Direct I/O (O_DIRECT) for a replica's writes: a second descriptor of the same open file with
// O_DIRECT, and the aligned memory such a write needs. Written through the page cache, a new
// replica cost `vdrep serve` ~1.4 CPU-s per GB, most of it the kernel copying into fresh
// page-cache pages (copy_folio_from_iter_atomic, 52% of its samples), and every sync pushed the
// replica host's own cache out. Direct writes go from our buffer to the device.
import fs from 'node:fs/promises'
import {constants} from 'node:fs'
import {addon} from './binding.js'

/** Offsets, lengths and addresses of direct writes are multiples of this (covers 512- and 4096-byte devices). */
export const DIRECT_ALIGN = 4096

/** `size` bytes at an address that is a multiple of DIRECT_ALIGN; undefined without the addon. */
export function alignedBuffer(size: number): Buffer | undefined {
  const ab = addon()?.alignedBuffer?.(size, DIRECT_ALIGN)
  return ab ? Buffer.from(ab) : undefined
}

/**
 * Whether a direct write can take `buf` as it is: its first byte at a multiple of DIRECT_ALIGN and
 * its length one too. False without the addon (the caller copies into alignedBuffer memory).
 */
export function directWritable(buf: Buffer): boolean {
  return buf.length % DIRECT_ALIGN === 0 && buf.length > 0 && addon()?.isAligned?.(buf, DIRECT_ALIGN) === true
}

export type DirectOpen = {fh: fs.FileHandle} | {reason: string}

/**
 * Open the file behind `fd` again, O_DIRECT (written, and read back by the proof). Through /proc/self/fd, so it is the
 * very inode `fd` holds (no path is looked up again: a symlink or rename since cannot redirect
 * it). The reason when it cannot: ramfs, tmpfs before Linux 6.6 and some FUSE file systems refuse O_DIRECT (EINVAL).
 */
export async function openDirect(fd: number): Promise<DirectOpen> {
  if (process.env.VDREP_NO_DIRECT_IO === '1') return {reason: 'off (VDREP_NO_DIRECT_IO=1)'}
  if (!addon()?.alignedBuffer) return {reason: 'no aligned memory without the native addon'}
  if (constants.O_DIRECT === undefined) return {reason: `no O_DIRECT on ${process.platform}`}
  try {
    return {fh: await fs.open(`/proc/self/fd/${fd}`, constants.O_RDWR | constants.O_DIRECT)}
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    return {reason: `the file system refuses O_DIRECT (${code})`}
  }
}
