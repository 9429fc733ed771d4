// After an unclean stop (a tracker killed, a crash), what the activity log vouches for: every
// block whose bit may be missing from the .psf lies in a hot extent (tracker/activity-log.ts),
// so only the blocks of hot extents that the persisted bitmaps do not mark need checking
// against the block hash index, not the whole disk. The log cannot vouch (and the whole disk is
// checked) when a page of it failed its checksum, or when the disk's mtime or ctime is later
// than the last transaction's lease: then something wrote the disk after the tracker could
// have (another program after the kill, or writes made after this .psf was copied, when it is
// a copy restored over the live one). A disk still carrying the stamp of the last clean point
// was written by nobody since: nothing to check at all.
import {Bitmap} from '../psf/bitmap.js'
import {EMPTY_SLOT} from '../psf/activity-log.js'
import {recordedStamp, stampDifference, type DiskStamp} from '../psf/disk-stamp.js'
import type {ChangeRecord} from '../change-record/change-record.js'

export interface LogCover {
  /** Blocks to check: in a hot extent, marked in neither persisted bitmap. */
  blocks: Bitmap
  hotExtents: number
}

/** The blocks the log says to check, or the reason it cannot vouch (check the whole disk). */
export async function logCover(record: ChangeRecord, stamp: DiskStamp, active: Bitmap, inflight: Bitmap): Promise<LogCover | string> {
  const h = record.header
  const image = await record.readActivityLog()
  if (typeof image === 'string') return image
  const blocks = new Bitmap(record.blockCount)
  if (h.sourceMtimeNs !== 0n && stampDifference(recordedStamp(h), stamp) === null) return {blocks, hotExtents: 0}
  const leaseNs = BigInt(image.leaseEndMs) * 1_000_000n
  const last = stamp.mtimeNs > stamp.ctimeNs ? stamp.mtimeNs : stamp.ctimeNs
  if (last > leaseNs) {
    const when = image.leaseEndMs > 0 ? `the last tracker's write lease ended at ${new Date(image.leaseEndMs).toISOString()}` : 'no tracker wrote under the log'
    return `the disk was written after ${when} (by another program after the tracker stopped, or this .psf is an older copy)`
  }
  const extentBlocks = 2 ** h.alExtentShift / h.blockSize
  let hotExtents = 0
  for (const e of image.slots) {
    if (e === EMPTY_SLOT) continue
    hotExtents++
    const end = Math.min(record.blockCount, (e + 1) * extentBlocks)
    for (let b = e * extentBlocks; b < end; b++) if (!active.get(b) && !inflight.get(b)) blocks.set(b)
  }
  return {blocks, hotExtents}
}
