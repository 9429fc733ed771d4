// The owed set of a reprotect travels as OWED pieces (protocol/reprotect-messages.ts): the
// bitmap cut at MAX_OWED_BITS, in order, the last piece ending at the disk's block count.
import {ProtocolError} from '../errors.js'
import {Bitmap} from '../psf/bitmap.js'
import {MAX_OWED_BITS, type Owed} from '../protocol/reprotect-messages.js'

export function owedPieces(bm: Bitmap): Owed[] {
  const out: Owed[] = []
  for (let first = 0; first < bm.blockCount; first += MAX_OWED_BITS) {
    const n = Math.min(MAX_OWED_BITS, bm.blockCount - first)
    const bits = Buffer.from(bm.bits.subarray(first / 8, first / 8 + Math.ceil(n / 8)))
    // The bitmap's own last byte has no bits past the disk set; a piece keeps it that way.
    if (n % 8 !== 0) bits[bits.length - 1] &= (1 << (n % 8)) - 1
    out.push({first, total: bm.blockCount, n, bits})
  }
  return out
}

/** Pieces in order, into one bitmap; `done` once the last block is covered. */
export class OwedCollector {
  readonly bitmap: Bitmap
  private next = 0

  constructor(blockCount: number) {
    this.bitmap = new Bitmap(blockCount)
  }

  get done(): boolean {
    return this.next === this.bitmap.blockCount
  }

  add(p: Owed): void {
    if (p.first !== this.next) throw new ProtocolError('FRAME_UNEXPECTED', `OWED piece at block ${p.first}, expected ${this.next}`)
    this.bitmap.bits.set(p.bits, p.first / 8)
    this.next = p.first + p.n
  }
}
