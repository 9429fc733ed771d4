// After an unclean stop, what the activity log vouches for: every block whose bit may be missing
// from the .psf lies in a hot extent (tracker/activity-log.ts), so only the blocks of hot
// extents that the persisted bitmaps do not mark need checking against the block hash index,
// not the whole disk. That holds only when nothing but the tracker can have written the disk
// since it stopped, and the log can prove that only across a host crash: the lease was written
// in an earlier boot, so no process that could write under it is left, and a write after the
// crash carries an mtime or ctime past this boot's start (and past the lease). A tracker killed
// while the host ran on proves nothing: another program may have written inside the lease
// window with an mtime no later than the tracker's own (issue 18 case 5), so the whole disk is
// checked, as is a log page that failed its checksum or a disk written after the lease. A disk
// still carrying the stamp of the last clean point was written by nobody since: nothing to check.
import {Bitmap} from '../psf/bitmap.js'
import {EMPTY_SLOT} from '../psf/activity-log.js'
import {recordedStamp, stampDifference, type DiskStamp} from '../psf/disk-stamp.js'
import type {ChangeRecord} from '../change-record/change-record.js'
import {bootId, bootTimeMs} from '../util/boot.js'

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
  if (image.bootId.equals(bootId()) || image.bootId.equals(Buffer.alloc(16))) {
    return 'the last tracker stopped while the host kept running (no host crash), so another program may have written the disk since'
  }
  const leaseNs = BigInt(image.leaseEndMs) * 1_000_000n
  // A second of slack: file times come from the kernel's coarse clock, the boot time from uptime.
  const bootNs = BigInt(Math.floor(bootTimeMs() - 1000)) * 1_000_000n
  const limit = leaseNs < bootNs ? leaseNs : bootNs
  const last = stamp.mtimeNs > stamp.ctimeNs ? stamp.mtimeNs : stamp.ctimeNs
  if (last > limit) {
    const when = image.leaseEndMs > 0 ? `the last tracker's write lease ended at ${new Date(image.leaseEndMs).toISOString()}` : 'no tracker wrote under the log'
    return `the disk was written after ${when} or after this boot began (by another program after the host came back, or this .psf is an older copy)`
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
