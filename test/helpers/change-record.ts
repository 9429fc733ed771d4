// Mark blocks changed in a disk's .psf and record the disk's stat, as `vdrep track --scan`
// leaves it: the cheap way for tests and benchmarks to prepare a push without a tracker.
import fs from 'node:fs/promises'
import {Region} from '../../src/core/psf/layout.js'
import {PsfFile, psfPathFor} from '../../src/core/psf/psf-file.js'
import {statPatch} from '../../src/core/psf/change-record.js'

export async function markChanged(disk: string, blocks: Iterable<number>): Promise<void> {
  const psf = await PsfFile.open(psfPathFor(disk))
  try {
    const {bitmap} = await psf.readBitmap(Region.ACTIVE)
    for (const b of blocks) bitmap.set(b)
    await psf.writeBitmap(Region.ACTIVE, bitmap)
    const fh = await fs.open(disk, 'r')
    const st = await fh.stat({bigint: true})
    await fh.close()
    await psf.updateHeader(statPatch(st))
  } finally {
    await psf.close()
  }
}

/** Blocks [first, first+count). */
export function blockRange(first: number, count: number): number[] {
  return Array.from({length: count}, (_, i) => first + i)
}
