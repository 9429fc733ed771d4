// The bitmap moves of the change record, one copy for every process: the tracker's dirty log
// runs them on its bitmaps in memory, a push or a scan without a tracker on the bitmaps the
// ChangeRecord loaded. Each move writes its pages in an order that keeps every block dirty on
// disk in one bitmap or the other, whatever write a crash cuts off.
import {Bitmap} from '../psf/bitmap.js'
import {BITS_PER_PAGE, Region} from '../psf/layout.js'

export type BitmapRegion = typeof Region.ACTIVE | typeof Region.INFLIGHT

/** Where the moves write pages: the owner's .psf (tests give a fake). */
export interface BitmapStore {
  readonly path: string
  /** Write the given pages of a bitmap, then one datasync (unless `sync: false`). */
  writeBitmap(region: BitmapRegion, bitmap: Bitmap, pages: Iterable<number>, opts?: {sync?: boolean}): Promise<void>
}

const PAGE_BYTES = BITS_PER_PAGE / 8

/** Bitmap pages holding at least one set bit. */
export function nonEmptyPages(bm: Bitmap): number[] {
  const out: number[] = []
  for (let start = 0, p = 0; start < bm.bits.length; start += PAGE_BYTES, p++) {
    const end = Math.min(bm.bits.length, start + PAGE_BYTES)
    for (let i = start; i < end; i++) {
      if (bm.bits[i] !== 0) {
        out.push(p)
        break
      }
    }
  }
  return out
}

async function write(store: BitmapStore, region: BitmapRegion, bm: Bitmap, pages: number[], sync = true): Promise<void> {
  if (pages.length > 0) await store.writeBitmap(region, bm, pages, {sync})
}

/**
 * Freeze (the point in time of a push): in-flight |= active, durable, before active = 0. A crash
 * between the two writes leaves the block in both bitmaps: sent again, never lost. Returns the
 * pages written, for the caller's accounting.
 */
export async function freezeMove(store: BitmapStore, active: Bitmap, inflight: Bitmap): Promise<number> {
  const activePages = nonEmptyPages(active)
  inflight.merge(active)
  const inflightPages = nonEmptyPages(inflight)
  await write(store, Region.INFLIGHT, inflight, inflightPages)
  active.clearAll()
  await write(store, Region.ACTIVE, active, activePages)
  return inflightPages.length + activePages.length
}

/**
 * A failed push (or a push that died, found at the next start): active |= in-flight, durable,
 * before in-flight = 0. Returns the number of blocks handed back.
 */
export async function mergeBackMove(store: BitmapStore, active: Bitmap, inflight: Bitmap): Promise<number> {
  const pages = nonEmptyPages(inflight)
  const count = inflight.count()
  active.merge(inflight)
  await write(store, Region.ACTIVE, active, pages)
  inflight.clearAll()
  await write(store, Region.INFLIGHT, inflight, pages)
  return count
}

/**
 * A proved push: in-flight = 0. `sync: false` leaves the cleared pages to the caller's next
 * sync (losing a clear is harmless: the blocks are sent again). Returns the blocks cleared.
 */
export async function clearInflightMove(store: BitmapStore, inflight: Bitmap, opts: {sync?: boolean} = {}): Promise<number> {
  const pages = nonEmptyPages(inflight)
  const count = inflight.count()
  inflight.clearAll()
  await write(store, Region.INFLIGHT, inflight, pages, opts.sync !== false)
  return count
}

/**
 * A scan's result: the blocks a dead push left in flight go back to active, the blocks the scan
 * found changed are added, those active pages are made durable, and only then is in-flight
 * emptied. `rewriteActive`/`rewriteInflight`: pages that failed their CRC (read as all dirty),
 * written back whole. Returns how many changed blocks were not dirty already.
 */
export async function markScannedMove(
  store: BitmapStore,
  active: Bitmap,
  inflight: Bitmap,
  changed: Bitmap,
  rewrite: {active?: number[]; inflight?: number[]} = {},
): Promise<number> {
  const inflightPages = nonEmptyPages(inflight)
  const touched = new Set<number>([...(rewrite.active ?? []), ...inflightPages])
  active.merge(inflight)
  let newly = 0
  for (const b of changed.setBlocks()) {
    if (active.get(b)) continue
    active.set(b)
    touched.add(Math.floor(b / BITS_PER_PAGE))
    newly++
  }
  await write(
    store,
    Region.ACTIVE,
    active,
    [...touched].sort((a, b) => a - b),
  )
  inflight.clearAll()
  await write(store, Region.INFLIGHT, inflight, [...new Set([...inflightPages, ...(rewrite.inflight ?? [])])])
  return newly
}

/** A proved full sync without a tracker: every page of both bitmaps written empty (bad ones too). */
export async function clearBothMove(store: BitmapStore, active: Bitmap, inflight: Bitmap): Promise<void> {
  const all = Array.from({length: Math.max(1, Math.ceil(active.blockCount / BITS_PER_PAGE))}, (_, p) => p)
  active.clearAll()
  inflight.clearAll()
  await store.writeBitmap(Region.ACTIVE, active, all)
  await store.writeBitmap(Region.INFLIGHT, inflight, all)
}

/** Bytes of disk the set blocks of `bm` cover (the last block may be short). */
export function bytesCovered(bm: Bitmap, blockSize: number, diskSize: number): number {
  const n = bm.count()
  if (n === 0) return 0
  const tail = bm.get(bm.blockCount - 1) ? bm.blockCount * blockSize - diskSize : 0
  return n * blockSize - tail
}

/** active ∪ in-flight: what the next push would send. */
export function unionOf(a: Bitmap, b: Bitmap): Bitmap {
  const u = new Bitmap(a.blockCount, Uint8Array.from(a.bits))
  u.merge(b)
  return u
}
