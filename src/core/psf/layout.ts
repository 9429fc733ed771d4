// Where things live inside a .psf. Two header slots (written alternately, so a torn write
// leaves the other intact), then fixed-size pages, each with its own CRC:
//   [slot A 4 KiB][slot B 4 KiB][active bitmap pages][in-flight bitmap pages][hash index pages]
//   [activity log pages (format 3)]
// The page counts follow from the disk size, block size and activity log length in the header.
import {HASH_LENGTH} from '../hash/block-hash.js'

export const SLOT_SIZE = 4096
export const PAGE_SIZE = 4096
/** crc32 (4) + region (1) + reserved (3) + page number (4) */
export const PAGE_HEADER_SIZE = 12
export const PAGE_PAYLOAD_SIZE = PAGE_SIZE - PAGE_HEADER_SIZE
export const BITS_PER_PAGE = PAGE_PAYLOAD_SIZE * 8
export const HASHES_PER_PAGE = Math.floor(PAGE_PAYLOAD_SIZE / HASH_LENGTH)

/** Activity log pages: seq (8) + lease end (8), then one u32 extent number per slot. */
/** Transaction number (8), lease end (8), the lease's boot id (16, page 0 only). */
export const AL_PAGE_FIXED = 32
export const AL_SLOTS_PER_PAGE = Math.floor((PAGE_PAYLOAD_SIZE - AL_PAGE_FIXED) / 4)

export const Region = {ACTIVE: 1, INFLIGHT: 2, INDEX: 3, ACTIVITY_LOG: 4} as const
export type RegionId = (typeof Region)[keyof typeof Region]

export interface PsfLayout {
  blockCount: number
  bitmapPages: number
  indexPages: number
  /** Pages of the activity log (0: a format 1 or 2 record, which has none). */
  alPages: number
  regionOffset: Record<RegionId, number>
  fileSize: number
}

export function blockCountOf(diskSize: number, blockSize: number): number {
  return Math.ceil(diskSize / blockSize)
}

export function alPagesFor(alExtents: number): number {
  return Math.ceil(alExtents / AL_SLOTS_PER_PAGE)
}

/** `alExtents` 0: no activity log (the layout of formats 1 and 2). */
export function layoutFor(diskSize: number, blockSize: number, alExtents = 0): PsfLayout {
  const blockCount = blockCountOf(diskSize, blockSize)
  const bitmapPages = Math.max(1, Math.ceil(blockCount / BITS_PER_PAGE))
  const indexPages = Math.max(1, Math.ceil(blockCount / HASHES_PER_PAGE))
  const alPages = alPagesFor(alExtents)
  const active = 2 * SLOT_SIZE
  const inflight = active + bitmapPages * PAGE_SIZE
  const index = inflight + bitmapPages * PAGE_SIZE
  const al = index + indexPages * PAGE_SIZE
  return {
    blockCount,
    bitmapPages,
    indexPages,
    alPages,
    regionOffset: {[Region.ACTIVE]: active, [Region.INFLIGHT]: inflight, [Region.INDEX]: index, [Region.ACTIVITY_LOG]: al} as Record<RegionId, number>,
    fileSize: al + alPages * PAGE_SIZE,
  }
}

export function pageCount(layout: PsfLayout, region: RegionId): number {
  if (region === Region.ACTIVITY_LOG) return layout.alPages
  return region === Region.INDEX ? layout.indexPages : layout.bitmapPages
}
