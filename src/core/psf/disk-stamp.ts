// What the disk looked like when the change record was last known to be complete: size,
// mtime and ctime in nanoseconds. A tracker records it at a clean stop (and `--scan` after
// a scan); any difference later means something wrote the disk while no tracker ran. The
// rule that judges it is change-record/doubt.ts.
import fs from 'node:fs/promises'
import type {PsfHeader} from './header.js'
import {blockDeviceSizeOfPath} from '../native/block-device.js'

export interface DiskStamp {
  size: number
  mtimeNs: bigint
  ctimeNs: bigint
}

/**
 * A stat is a clean point only once the disk's mtime is this old: a write in the same
 * timestamp tick as the one before it (Linux's coarse clock: up to 10 ms) leaves mtime as it
 * was, so a stat taken right after a write cannot tell a later write in that tick apart.
 */
export const STAMP_SETTLE_MS = 20

/**
 * `stat()`, taken when the mtime it reports is at least STAMP_SETTLE_MS old: waits (once) for
 * a disk written a moment ago, then stats again. A disk written all the time (a live guest
 * without a tracker) gets its latest stat: its guarantee is per block anyway.
 */
export async function settledStat<T extends {mtimeNs: bigint}>(stat: () => Promise<T>): Promise<T> {
  const st = await stat()
  const age = Date.now() - Number(st.mtimeNs / 1_000_000n)
  if (age < 0 || age >= STAMP_SETTLE_MS) return st
  await new Promise((r) => setTimeout(r, STAMP_SETTLE_MS - age))
  return stat()
}

export async function stampOf(disk: string): Promise<DiskStamp> {
  const st = await fs.stat(disk, {bigint: true})
  const size = st.isBlockDevice() ? blockDeviceSizeOfPath(disk) : Number(st.size)
  return {size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs}
}

/** The stamp recorded in the header. */
export function recordedStamp(h: PsfHeader): DiskStamp {
  return {size: h.sourceSize, mtimeNs: h.sourceMtimeNs, ctimeNs: h.sourceCtimeNs}
}

function iso(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString()
}

/** Why two stamps differ, in words; null when they are the same. */
export function stampDifference(recorded: DiskStamp, now: DiskStamp): string | null {
  if (recorded.size !== now.size) return `its size changed from ${recorded.size} to ${now.size} bytes`
  if (recorded.mtimeNs !== now.mtimeNs) return `its mtime changed from ${iso(recorded.mtimeNs)} to ${iso(now.mtimeNs)}`
  if (recorded.ctimeNs !== now.ctimeNs) return `its ctime changed from ${iso(recorded.ctimeNs)} to ${iso(now.ctimeNs)}`
  return null
}
