// Mark blocks changed in a disk's .psf and record the disk's stat, as `vdrep track --scan`
// leaves it (the record's scan-result transition): the cheap way for tests and benchmarks to
// prepare a push without a tracker.
import {Bitmap} from '../../src/core/psf/bitmap.js'
import {psfPathFor} from '../../src/core/psf/psf-file.js'
import {stampOf} from '../../src/core/psf/disk-stamp.js'
import {ChangeRecord} from '../../src/core/change-record/change-record.js'

export async function markChanged(disk: string, blocks: Iterable<number>): Promise<void> {
  const record = await ChangeRecord.openOwned(psfPathFor(disk))
  try {
    const changed = new Bitmap(record.blockCount)
    for (const b of blocks) changed.set(b)
    await record.scanResult(changed, await stampOf(disk))
  } finally {
    await record.close()
  }
}

/** Blocks [first, first+count). */
export function blockRange(first: number, count: number): number[] {
  return Array.from({length: count}, (_, i) => first + i)
}
