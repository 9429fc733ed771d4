// A source disk that grew is not a reason for a full sync: the .psf is laid out anew for the
// new size (bitmaps and index carried over) and every new block is marked changed.
import {Bitmap} from '../psf/bitmap.js'
import {Region, HASHES_PER_PAGE} from '../psf/layout.js'
import {PsfFile} from '../psf/psf-file.js'
import {HASH_LENGTH} from '../hash/block-hash.js'

export async function growChangeRecord(psf: PsfFile, newSize: number): Promise<void> {
  const h = psf.header
  const oldBlocks = psf.layout.blockCount
  const {bitmap: oldActive} = await psf.readBitmap(Region.ACTIVE)
  const {bitmap: oldInflight} = await psf.readBitmap(Region.INFLIGHT)
  const {hashes} = await psf.readIndex()
  const newBlocks = Math.ceil(newSize / h.blockSize)
  const active = new Bitmap(newBlocks)
  active.bits.set(oldActive.bits)
  // the old last block may have been partial: it changed length, so it changed
  active.setRange(Math.max(0, oldBlocks - 1), newBlocks - Math.max(0, oldBlocks - 1))
  const inflight = new Bitmap(newBlocks)
  inflight.bits.set(oldInflight.bits)
  await PsfFile.create(psf.path, {...h, diskSize: newSize, counter: h.counter + 1n}, {active, inflight})
  const fresh = await PsfFile.open(psf.path)
  try {
    const whole = Math.floor(oldBlocks / HASHES_PER_PAGE) * HASHES_PER_PAGE
    if (whole > 0) await fresh.writeIndexPages(0, hashes.subarray(0, whole * HASH_LENGTH))
    await fresh.sync()
  } finally {
    await fresh.close()
  }
  await psf.reopen()
}
