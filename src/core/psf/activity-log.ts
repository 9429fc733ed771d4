// The activity log region of a .psf (format 3): the durable set of "hot" extents, after DRBD's
// activity log. A write may land in a hot extent without its dirty bit being durable yet (the
// bitmap reaches the .psf lazily); after a crash, only the blocks of hot extents that the
// persisted bitmap does not mark need checking. Each page holds the transaction number that
// wrote it, the write lease (page 0: the tracker writes no data after this time without first
// extending it, so a disk changed later was written by something else), and a run of slots,
// each an extent number or EMPTY_SLOT. Pages carry the CRC of every .psf page (page.ts).
import {AL_PAGE_FIXED, AL_SLOTS_PER_PAGE, PAGE_PAYLOAD_SIZE} from './layout.js'

export const EMPTY_SLOT = 0xffffffff

/** Slots are u32 little-endian on disk: on a little-endian host, a page's run of them is one copy. */
const HOST_LE = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1

/** What the activity log holds: slot i names an extent (or EMPTY_SLOT). */
export interface ActivityLogImage {
  /** The newest transaction that wrote a page (0: never written). */
  seq: number
  /** Page 0's lease: ms since the epoch after which the tracker wrote no data (0: none). */
  leaseEndMs: number
  /** Page 0: the host boot the lease was written in (util/boot.ts; zeros: unknown). */
  bootId: Buffer
  slots: Uint32Array
}

export function emptyActivityLog(alExtents: number): ActivityLogImage {
  return {seq: 0, leaseEndMs: 0, bootId: Buffer.alloc(16), slots: new Uint32Array(alExtents).fill(EMPTY_SLOT)}
}

/** The payload of page `p`: its transaction number, the lease (page 0 only), its slots. */
export function encodeAlPayload(image: ActivityLogImage, p: number): Buffer {
  const out = Buffer.alloc(PAGE_PAYLOAD_SIZE)
  out.writeBigUInt64LE(BigInt(image.seq), 0)
  out.writeBigUInt64LE(BigInt(p === 0 ? image.leaseEndMs : 0), 8)
  if (p === 0) image.bootId.copy(out, 16, 0, 16)
  const first = p * AL_SLOTS_PER_PAGE
  const last = Math.min(image.slots.length, first + AL_SLOTS_PER_PAGE)
  out.fill(0xff, AL_PAGE_FIXED, AL_PAGE_FIXED + AL_SLOTS_PER_PAGE * 4) // slots past the last: empty
  if (HOST_LE && last > first) {
    const s = image.slots
    out.set(new Uint8Array(s.buffer, s.byteOffset + first * 4, (last - first) * 4), AL_PAGE_FIXED)
  } else for (let i = first, at = AL_PAGE_FIXED; i < last; i++, at += 4) out.writeUInt32LE(image.slots[i], at)
  return out
}

/**
 * The log from its page payloads (undefined: a page failed its CRC), or the reason it cannot
 * be used: then it vouches for nothing and the whole disk is checked.
 */
export function decodeActivityLog(payloads: Array<Buffer | undefined>, alExtents: number, extentCount: number): ActivityLogImage | string {
  const image = emptyActivityLog(alExtents)
  for (let p = 0; p < payloads.length; p++) {
    const payload = payloads[p]
    if (!payload) return `page ${p} of the activity log failed its checksum`
    const seq = payload.readBigUInt64LE(0)
    const lease = payload.readBigUInt64LE(8)
    if (seq > BigInt(Number.MAX_SAFE_INTEGER) || lease > BigInt(Number.MAX_SAFE_INTEGER)) return `page ${p} of the activity log has an out-of-range field`
    image.seq = Math.max(image.seq, Number(seq))
    if (p === 0) {
      image.leaseEndMs = Number(lease)
      image.bootId = Buffer.from(payload.subarray(16, 32))
    }
    const first = p * AL_SLOTS_PER_PAGE
    const last = Math.min(alExtents, first + AL_SLOTS_PER_PAGE)
    for (let i = first, at = AL_PAGE_FIXED; i < last; i++, at += 4) {
      const e = payload.readUInt32LE(at)
      if (e !== EMPTY_SLOT && e >= extentCount) return `slot ${i} of the activity log names extent ${e}, past the disk's ${extentCount}`
      image.slots[i] = e
    }
  }
  return image
}

/** The page of the log holding a slot. */
export function alPageOfSlot(slot: number): number {
  return Math.floor(slot / AL_SLOTS_PER_PAGE)
}
