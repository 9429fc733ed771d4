// One 4 KiB page of a .psf region: its own CRC, so one bad page costs only the blocks it
// covers (they are marked dirty), not the whole change record.
import zlib from 'node:zlib'
import {PAGE_HEADER_SIZE, PAGE_PAYLOAD_SIZE, PAGE_SIZE, type RegionId} from './layout.js'

export function encodePage(region: RegionId, pageNo: number, payload: Uint8Array): Buffer {
  if (payload.length > PAGE_PAYLOAD_SIZE) throw new RangeError(`page payload of ${payload.length} bytes exceeds ${PAGE_PAYLOAD_SIZE}`)
  const page = Buffer.alloc(PAGE_SIZE)
  page.writeUInt8(region, 4)
  page.writeUInt32LE(pageNo, 8)
  page.set(payload, PAGE_HEADER_SIZE)
  page.writeUInt32LE(zlib.crc32(page.subarray(4)), 0)
  return page
}

/** The payload of a page, or undefined when its CRC, region or number is wrong. */
export function decodePage(page: Buffer, region: RegionId, pageNo: number): Buffer | undefined {
  if (page.length !== PAGE_SIZE) return undefined
  if (page.readUInt32LE(0) !== zlib.crc32(page.subarray(4))) return undefined
  if (page.readUInt8(4) !== region || page.readUInt32LE(8) !== pageNo) return undefined
  return page.subarray(PAGE_HEADER_SIZE)
}
