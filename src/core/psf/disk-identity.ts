// Which disk a .psf belongs to (format 2). A regular file is its filesystem's device number
// and its inode: `cp -a` makes a new inode, `mv` of another file over the path names another
// inode, and a .psf copied beside another disk records the first disk's. A block device is its
// device number (st_rdev) and its size: every block device has both (a /dev/disk/by-id link
// needs udev and a serial, which loop, nbd and many virtio devices lack), and a renumbered or
// resized device reads as another disk, which is refused (the safe side). The canonical path
// is kept for messages only; it decides nothing. The rule that judges it is
// change-record/identity.ts.
import fs from 'node:fs/promises'
import type {BigIntStats} from 'node:fs'
import {blockDeviceSizeOfPath} from '../native/block-device.js'

export const IdentityKind = {
  /** A format-1 record: it does not say which disk it belongs to. */
  NONE: 0,
  FILE: 1,
  BLOCK_DEVICE: 2,
} as const
export type IdentityKindId = (typeof IdentityKind)[keyof typeof IdentityKind]

export interface DiskIdentity {
  kind: IdentityKindId
  /** A file: st_dev (the filesystem). A block device: st_rdev (the device itself). */
  dev: bigint
  /** A file: st_ino. A block device: its size in bytes. */
  ino: bigint
  /** The disk's canonical path when it was bound (for messages; decides nothing). */
  path: string
}

/** Longest path kept in the header (bytes); a longer one is cut (it is only for messages). */
export const MAX_IDENTITY_PATH = 1024

export const NO_IDENTITY: DiskIdentity = {kind: IdentityKind.NONE, dev: 0n, ino: 0n, path: ''}

/** The identity of the disk a stat describes; `size` for a block device (fstat says 0). */
export function identityFromStat(st: BigIntStats, canonicalPath: string, blockDeviceSize?: number): DiskIdentity {
  if (st.isBlockDevice()) return {kind: IdentityKind.BLOCK_DEVICE, dev: st.rdev, ino: BigInt(blockDeviceSize ?? 0), path: canonicalPath}
  return {kind: IdentityKind.FILE, dev: st.dev, ino: st.ino, path: canonicalPath}
}

/** The identity of whatever the path names now (symlinks followed). */
export async function identityOf(disk: string): Promise<DiskIdentity> {
  const st = await fs.stat(disk, {bigint: true})
  const canonical = await fs.realpath(disk).catch(() => disk)
  return identityFromStat(st, canonical, st.isBlockDevice() ? blockDeviceSizeOfPath(disk) : undefined)
}

/** Both name the same disk (the paths are not compared). */
export function sameDisk(a: DiskIdentity, b: DiskIdentity): boolean {
  return a.kind === b.kind && a.dev === b.dev && a.ino === b.ino
}

/** "inode 1234 on device 8:1", "block device 7:3 of 1048576 bytes", for messages. */
export function describeIdentity(id: DiskIdentity): string {
  const majmin = (d: bigint) => `${Number((d >> 8n) & 0xfffn)}:${Number((d & 0xffn) | ((d >> 12n) & 0xfff00n))}`
  if (id.kind === IdentityKind.FILE) return `inode ${id.ino} on device ${majmin(id.dev)}`
  if (id.kind === IdentityKind.BLOCK_DEVICE) return `block device ${majmin(id.dev)} of ${id.ino} bytes`
  return 'no disk (a format-1 record)'
}
