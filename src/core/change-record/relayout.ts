// A new layout of the .psf for a new disk size (the disk grew): the whole file is written anew
// beside it and renamed over it (PsfFile.create), so a crash leaves the old record or the new
// one, never a mix. Used by ChangeRecord.grow and by a proved full sync of a grown disk.
import {Bitmap} from '../psf/bitmap.js'
import {HASH_LENGTH} from '../hash/block-hash.js'
import type {PsfHeader} from '../psf/header.js'
import {PsfFile} from '../psf/psf-file.js'

export interface NewLayout {
  header: PsfHeader
  active?: Bitmap
  inflight?: Bitmap
  /** Index hashes from block 0 (whole pages, or the whole index). */
  index?: Buffer
}

/** The grown record: old bitmaps carried over, the new blocks (and the old partial last one) dirty. */
export function grownLayout(h: PsfHeader, oldBlocks: number, newSize: number, oldActive: Bitmap, oldInflight: Bitmap, oldIndex: Buffer): NewLayout {
  const newBlocks = Math.ceil(newSize / h.blockSize)
  const active = new Bitmap(newBlocks)
  active.bits.set(oldActive.bits)
  // the old last block may have been partial: it changed length, so it changed
  const from = Math.max(0, oldBlocks - 1)
  active.setRange(from, newBlocks - from)
  const inflight = new Bitmap(newBlocks)
  inflight.bits.set(oldInflight.bits)
  // Every old block but the last keeps its index entry (the last is marked above), the tail of
  // a partly used page included: dropping it made a later local check mark up to a page of
  // unchanged blocks. A page that failed its checksum reads as zeros, which match no block.
  const kept = Math.max(0, oldBlocks - 1)
  return {header: {...h, diskSize: newSize}, active, inflight, index: kept > 0 ? oldIndex.subarray(0, kept * HASH_LENGTH) : undefined}
}

/** Write the new layout over `psf`'s file (counter + 1), make its index durable, re-open `psf` on it. */
export async function relayout(psf: PsfFile, next: NewLayout): Promise<void> {
  await PsfFile.create(psf.path, {...next.header, counter: psf.header.counter + 1n}, {active: next.active, inflight: next.inflight})
  if (next.index) {
    const fresh = await PsfFile.open(psf.path)
    try {
      await fresh.writeIndexPages(0, next.index)
      await fresh.sync()
    } finally {
      await fresh.close()
    }
  }
  await psf.reopen()
}
