// The physical floor of a transfer over a shaped link (issue 21): the bytes that must cross it
// at best, divided by its rate. For a new replica of a disk: its non-zero blocks after `zstd -1`
// (per 1 MiB piece, kept raw where it does not shrink, as vdrep sends them), plus the zero runs
// as run lengths (a few bytes each). SSH, TCP and IP framing (some 3-5%) are left out, so no tool
// can reach it; it shows how close each tool is to what the wire allows, apart from the CPU.
import fs from 'node:fs/promises'
import {Compressor} from '../src/core/compress/codec.js'
import {isAllZero} from '../src/core/hash/zero.js'

export interface Floor {
  /** Non-zero bytes of the disk. */
  dataBytes: number
  /** Those after zstd -1 per piece (raw where it does not shrink). */
  zstdBytes: number
  /** Seconds at `bytesPerSecond`: raw and compressed. */
  rawSeconds: number
  zstdSeconds: number
}

const PIECE = 1 << 20
const BLOCK = 64 * 1024

/** Bytes per second of a tc rate ('1gbit', '100mbit'). */
export function rateBytesPerSecond(rate: string): number {
  const m = /^(\d+(?:\.\d+)?)(k|m|g)?bit$/i.exec(rate)
  if (!m) throw new Error(`rate '${rate}' is not <n>kbit|mbit|gbit`)
  return (Number(m[1]) * {k: 1e3, m: 1e6, g: 1e9, '': 1}[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'g' | '']) / 8
}

/** The floor of a new replica of `file` over a link of `rate` (reads the file once). */
export async function linkFloor(file: string, rate: string): Promise<Floor> {
  const z = new Compressor()
  const fh = await fs.open(file, 'r')
  const buf = Buffer.alloc(PIECE)
  let dataBytes = 0
  let zstdBytes = 0
  let zeroRuns = 0
  let inZero = false
  try {
    for (let off = 0; ; off += PIECE) {
      const {bytesRead} = await fh.read(buf, 0, PIECE, off)
      if (bytesRead === 0) break
      // Gather the piece's non-zero blocks (as vdrep's runs do) and count zero runs.
      const parts: Buffer[] = []
      for (let b = 0; b < bytesRead; b += BLOCK) {
        const block = buf.subarray(b, Math.min(b + BLOCK, bytesRead))
        if (isAllZero(block)) {
          if (!inZero) zeroRuns++
          inZero = true
          continue
        }
        inZero = false
        parts.push(block)
      }
      if (parts.length === 0) continue
      const data = Buffer.concat(parts)
      dataBytes += data.length
      const packed = z.compress(data, 1, data.length)
      zstdBytes += packed ? packed.length : data.length
    }
  } finally {
    await fh.close()
  }
  zstdBytes += zeroRuns * 16
  const bps = rateBytesPerSecond(rate)
  return {dataBytes, zstdBytes, rawSeconds: dataBytes / bps, zstdSeconds: zstdBytes / bps}
}
