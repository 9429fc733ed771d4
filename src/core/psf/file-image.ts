// A new .psf as one image (both header slots, empty or given bitmaps, an empty index, an empty
// activity log), and the header a new record starts from. PsfFile.create writes the image
// atomically; `init`, a grown disk's new layout and a promoted replica's record use it.
import crypto from 'node:crypto'
import {emptyActivityLog, encodeAlPayload} from './activity-log.js'
import type {Bitmap} from './bitmap.js'
import {DEFAULT_AL_EXTENT_SHIFT, DEFAULT_AL_EXTENTS, encodeHeader, type PsfHeader} from './header.js'
import {BITS_PER_PAGE, PAGE_SIZE, Region, SLOT_SIZE, type PsfLayout, type RegionId} from './layout.js'
import {encodePage} from './page.js'
import type {ReplicationSettings} from './settings.js'
import {NO_IDENTITY, type DiskIdentity} from './disk-identity.js'

export interface PsfInit {
  diskSize: number
  blockSize: number
  hashAlgo: number
  settings: ReplicationSettings
  replicaId?: Buffer
  /** The disk the record belongs to (disk-identity.ts); `vdrep init` always gives it. */
  identity?: DiskIdentity
  /** Hot extents the activity log keeps; default DEFAULT_AL_EXTENTS. */
  alExtents?: number
  /** The activity log's extent size in bytes (a power of two, at least the block size); default 4 MiB. */
  alExtentBytes?: number
}

/** The activity log's extent size for a block size: the default, or the block size if larger. */
export function defaultAlExtentShift(blockSize: number): number {
  return Math.max(DEFAULT_AL_EXTENT_SHIFT, Math.log2(blockSize))
}

export function newHeader(init: PsfInit): PsfHeader {
  return {
    flags: 0,
    counter: 1n,
    diskSize: init.diskSize,
    blockSize: init.blockSize,
    hashAlgo: init.hashAlgo,
    replicaId: init.replicaId ?? crypto.randomBytes(16),
    lastCommit: Buffer.alloc(16),
    generation: 0,
    lastSeq: 0,
    lastSyncMs: 0,
    sourceSize: 0,
    sourceMtimeNs: 0n,
    sourceCtimeNs: 0n,
    pendingSeq: 0,
    createdMs: Date.now(),
    identity: init.identity ?? NO_IDENTITY,
    settings: init.settings,
    alExtents: init.alExtents ?? DEFAULT_AL_EXTENTS,
    alExtentShift: init.alExtentBytes !== undefined ? Math.log2(init.alExtentBytes) : defaultAlExtentShift(init.blockSize),
  }
}

/** The empty activity log pages of a layout, encoded. */
export function emptyAlPages(layout: PsfLayout, alExtents: number): Buffer {
  const out = Buffer.alloc(layout.alPages * PAGE_SIZE)
  const image = emptyActivityLog(alExtents)
  for (let p = 0; p < layout.alPages; p++) encodePage(Region.ACTIVITY_LOG, p, encodeAlPayload(image, p)).copy(out, p * PAGE_SIZE)
  return out
}

/** The whole file image for a header: both slots, empty bitmaps, an empty index and activity log. */
export function fileImage(header: PsfHeader, layout: PsfLayout, bitmaps?: {active?: Bitmap; inflight?: Bitmap}): Buffer {
  const out = Buffer.alloc(layout.fileSize)
  const slot = encodeHeader(header)
  slot.copy(out, 0)
  slot.copy(out, SLOT_SIZE)
  const fill = (region: RegionId, count: number, payloadOf: (p: number) => Uint8Array) => {
    for (let p = 0; p < count; p++) encodePage(region, p, payloadOf(p)).copy(out, layout.regionOffset[region] + p * PAGE_SIZE)
  }
  const bitmapPayload = (bm: Bitmap | undefined) => (p: number) =>
    bm ? bm.bits.subarray((p * BITS_PER_PAGE) / 8, ((p + 1) * BITS_PER_PAGE) / 8) : new Uint8Array(0)
  fill(Region.ACTIVE, layout.bitmapPages, bitmapPayload(bitmaps?.active))
  fill(Region.INFLIGHT, layout.bitmapPages, bitmapPayload(bitmaps?.inflight))
  fill(Region.INDEX, layout.indexPages, () => new Uint8Array(0))
  emptyAlPages(layout, header.alExtents).copy(out, layout.regionOffset[Region.ACTIVITY_LOG])
  return out
}
