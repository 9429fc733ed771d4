// The digest that seals a delta bundle: both ends feed it every entry in the order sent, so
// the receiver can tell a complete bundle from a truncated or reordered one before applying.
//   data entry:  'D' | block u64 LE | block hash
//   zero run:    'Z' | first block u64 LE | count u64 LE
import type {StreamHasher} from '../hash/block-hash.js'

export function digestData(h: StreamHasher, block: number, hash: Buffer): void {
  const b = Buffer.allocUnsafe(9)
  b.writeUInt8(0x44, 0)
  b.writeBigUInt64LE(BigInt(block), 1)
  h.update(b)
  h.update(hash)
}

export function digestZero(h: StreamHasher, first: number, count: number): void {
  const b = Buffer.allocUnsafe(17)
  b.writeUInt8(0x5a, 0)
  b.writeBigUInt64LE(BigInt(first), 1)
  b.writeBigUInt64LE(BigInt(count), 9)
  h.update(b)
}
