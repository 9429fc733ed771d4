// A dirty-block bitmap: one bit per block, LSB-first within each byte.
export class Bitmap {
  readonly bits: Uint8Array
  constructor(
    readonly blockCount: number,
    bits?: Uint8Array,
  ) {
    this.bits = bits ?? new Uint8Array(Math.ceil(blockCount / 8))
  }

  get(block: number): boolean {
    return (this.bits[block >>> 3] & (1 << (block & 7))) !== 0
  }
  set(block: number): void {
    this.bits[block >>> 3] |= 1 << (block & 7)
  }
  clear(block: number): void {
    this.bits[block >>> 3] &= ~(1 << (block & 7))
  }
  setRange(first: number, count: number): void {
    for (let b = first; b < first + count && b < this.blockCount; b++) this.set(b)
  }
  clearAll(): void {
    this.bits.fill(0)
  }
  /** this |= other */
  merge(other: Bitmap): void {
    for (let i = 0; i < this.bits.length && i < other.bits.length; i++) this.bits[i] |= other.bits[i]
  }
  count(): number {
    let n = 0
    for (const byte of this.bits) {
      let v = byte
      while (v) {
        v &= v - 1
        n++
      }
    }
    return n
  }
  *setBlocks(): Generator<number> {
    for (let i = 0; i < this.bits.length; i++) {
      const byte = this.bits[i]
      if (byte === 0) continue
      for (let j = 0; j < 8; j++) if (byte & (1 << j)) yield i * 8 + j
    }
  }
  isEmpty(): boolean {
    return this.bits.every((b) => b === 0)
  }
}
