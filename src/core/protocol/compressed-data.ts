// DATA_Z (17), client -> receiver: a run of contiguous blocks compressed as one codec frame,
// with each block's hash over its uncompressed bytes (doc/protocol.md "DATA_Z"). Decoded here
// with every field bounded; the run's lengths against the session (block size, disk size) are
// checked by the receiver's decompressing reader (compress/decompress-source.ts).
import {ProtocolError} from '../errors.js'
import {HASH_LENGTH} from '../hash/block-hash.js'
import {MAX_BLOCK_SIZE} from '../psf/header.js'
import {BufferReader, BufferWriter} from '../util/binary.js'

/** Largest uncompressed run: one 4 MiB block, or 1024 blocks of 4 KiB. */
export const MAX_RUN_BYTES = MAX_BLOCK_SIZE
export const MAX_RUN_BLOCKS = 1024
/** Fixed fields before the hashes: first u64, count u32, rawLength u32, codec u8. */
export const DATA_Z_FIXED = 8 + 4 + 4 + 1

export interface CompressedRun {
  first: number
  count: number
  /** Uncompressed length of the run: count blocks, the last one possibly short. */
  rawLength: number
  codec: number
  /** HASH_LENGTH bytes per block, in order, over the uncompressed blocks. */
  hashes: Buffer
  compressed: Buffer
}

export function encodeCompressedRunFields(m: Omit<CompressedRun, 'compressed'>): Buffer {
  return new BufferWriter(DATA_Z_FIXED + m.hashes.length).u64(m.first).u32(m.count).u32(m.rawLength).u8(m.codec).bytes(m.hashes).finish()
}

export function decodeCompressedRun(b: Buffer): CompressedRun {
  const fail = (field: string, detail: string) => new ProtocolError('FRAME_MALFORMED', `malformed DATA_Z frame: ${field}: ${detail}`)
  const r = new BufferReader(b, fail)
  const first = r.u64('first block')
  const count = r.u32('count')
  if (count === 0 || count > MAX_RUN_BLOCKS) throw fail('count', `${count} is outside 1..${MAX_RUN_BLOCKS}`)
  const rawLength = r.u32('raw length')
  if (rawLength === 0 || rawLength > MAX_RUN_BYTES) throw fail('raw length', `${rawLength} is outside 1..${MAX_RUN_BYTES}`)
  const codec = r.u8('codec')
  const hashes = r.bytes(count * HASH_LENGTH, 'hashes')
  const compressed = b.subarray(DATA_Z_FIXED + count * HASH_LENGTH)
  if (compressed.length === 0) throw fail('data', 'empty')
  // Compression that does not shrink is sent raw (DATA): a larger body is no honest sender's.
  if (compressed.length >= rawLength) throw fail('data', `${compressed.length} compressed bytes for a run of ${rawLength}`)
  return {first, count, rawLength, codec, hashes, compressed}
}
