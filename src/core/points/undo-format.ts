// The codec of an undo record, one file of `<replica>.vdrep-points/`: the blocks that commits
// from+1..to overwrote, as they were at point `from`. Laid over the replica at point `to`,
// it gives the disk at point `from`. doc/points-format.md is the spec; this file follows it
// field by field. Every length read from the file is checked against the file's own size and
// the disk's block count before anything is allocated or trusted.
import zlib from 'node:zlib'
import {StateError} from '../errors.js'
import {BufferReader} from '../util/binary.js'

export const UNDO_MAGIC = Buffer.from('VDRUNDO1', 'ascii')
export const UNDO_END_MAGIC = Buffer.from('VDRUEND1', 'ascii')
export const UNDO_VERSION = 1
export const UNDO_HEADER_SIZE = 128
export const UNDO_ENTRY_SIZE = 32
export const UNDO_TRAILER_SIZE = 64
/** A data extent holds at most this many bytes (one block, if blocks are larger): a reader verifies a whole extent on first touch. */
export const EXTENT_MAX_BYTES = 4 << 20
/** Largest disk a record can describe (the receiver's own cap). */
const MAX_DISK_SIZE = 2 ** 52
export const ExtentKind = {DATA: 1, ZERO: 2} as const

export interface UndoHeader {
  blockSize: number
  /** The point this record restores (`from`) and the point it is laid over (`to`). */
  fromSeq: number
  toSeq: number
  fromDiskSize: number
  toDiskSize: number
  /** Commit times (ms since the epoch) of the two points. */
  fromMs: number
  toMs: number
  replicaId: Buffer
  /** The chain this record belongs to (the replica state's pointsChain); a full sync starts a new one. */
  chainId: Buffer
}

export interface UndoExtent {
  block: number
  count: number
  kind: typeof ExtentKind.DATA | typeof ExtentKind.ZERO
  /** Data: where its bytes start in the file (count × block size of them). Zero: 0. */
  offset: number
  /** crc32 of the data bytes; 0 for a zero run. */
  crc: number
}

export interface UndoTrailer {
  entryCount: number
  indexOffset: number
  dataBytes: number
  indexCrc: number
}

export const corruptPoint = (file: string, detail: string) =>
  new StateError('POINT_CORRUPT', `the restore point file ${file} is unusable: ${detail}; it is not trusted`, {
    hint: 'the points older than it cannot be read; retention drops it at the next commit, or remove it by hand',
  })

export const blocksOf = (diskSize: number, bs: number) => Math.ceil(diskSize / bs)
export const extentMaxBlocks = (bs: number) => Math.max(1, Math.floor(EXTENT_MAX_BYTES / bs))

export function encodeUndoHeader(h: UndoHeader): Buffer {
  const b = Buffer.alloc(UNDO_HEADER_SIZE)
  UNDO_MAGIC.copy(b, 0)
  b.writeUInt16LE(UNDO_VERSION, 8)
  b.writeUInt32LE(h.blockSize, 12)
  b.writeBigUInt64LE(BigInt(h.fromSeq), 16)
  b.writeBigUInt64LE(BigInt(h.toSeq), 24)
  b.writeBigUInt64LE(BigInt(h.fromDiskSize), 32)
  b.writeBigUInt64LE(BigInt(h.toDiskSize), 40)
  b.writeBigUInt64LE(BigInt(h.fromMs), 48)
  b.writeBigUInt64LE(BigInt(h.toMs), 56)
  h.replicaId.copy(b, 64, 0, 16)
  h.chainId.copy(b, 80, 0, 16)
  b.writeUInt32LE(zlib.crc32(b.subarray(0, 124)), 124)
  return b
}

const allZero = (b: Buffer) => b.every((x) => x === 0)

export function decodeUndoHeader(b: Buffer, file: string): UndoHeader {
  const fail = (field: string, detail: string) => corruptPoint(file, `header ${field}: ${detail}`)
  if (b.length < UNDO_HEADER_SIZE) throw fail('length', `only ${b.length} bytes`)
  if (!b.subarray(0, 8).equals(UNDO_MAGIC)) throw fail('magic', 'not a vdrep undo record')
  if (b.readUInt32LE(124) !== zlib.crc32(b.subarray(0, 124))) throw fail('crc32', 'mismatch')
  const r = new BufferReader(b, fail)
  r.bytes(8, 'magic')
  const version = r.u16('version')
  if (version !== UNDO_VERSION) throw fail('version', `${version}, this vdrep reads ${UNDO_VERSION}`)
  if (r.u16('reserved') !== 0 || !allZero(b.subarray(96, 124))) throw fail('reserved', 'not zero')
  const blockSize = r.u32('block size')
  if (blockSize < 4096 || blockSize > 4 << 20 || (blockSize & (blockSize - 1)) !== 0) throw fail('block size', String(blockSize))
  const h: UndoHeader = {
    blockSize,
    fromSeq: r.u64('from sequence'),
    toSeq: r.u64('to sequence'),
    fromDiskSize: r.u64('from disk size'),
    toDiskSize: r.u64('to disk size'),
    fromMs: r.u64('from time'),
    toMs: r.u64('to time'),
    replicaId: Buffer.from(r.bytes(16, 'replica id')),
    chainId: Buffer.from(r.bytes(16, 'chain id')),
  }
  if (h.toSeq <= h.fromSeq) throw fail('sequences', `from ${h.fromSeq} is not before to ${h.toSeq}`)
  for (const [name, v] of [
    ['from disk size', h.fromDiskSize],
    ['to disk size', h.toDiskSize],
  ] as const)
    if (v <= 0 || v > MAX_DISK_SIZE) throw fail(name, `${v} out of range`)
  // A push never shrinks a replica: the older point is never the larger disk.
  if (h.fromDiskSize > h.toDiskSize) throw fail('disk sizes', `from ${h.fromDiskSize} > to ${h.toDiskSize}`)
  return h
}

export function encodeUndoEntry(e: UndoExtent): Buffer {
  const b = Buffer.alloc(UNDO_ENTRY_SIZE)
  b.writeBigUInt64LE(BigInt(e.block), 0)
  b.writeUInt32LE(e.count, 8)
  b.writeUInt8(e.kind, 12)
  b.writeBigUInt64LE(BigInt(e.offset), 16)
  b.writeUInt32LE(e.crc >>> 0, 24)
  return b
}

export function encodeUndoTrailer(t: UndoTrailer): Buffer {
  const b = Buffer.alloc(UNDO_TRAILER_SIZE)
  UNDO_END_MAGIC.copy(b, 0)
  b.writeBigUInt64LE(BigInt(t.entryCount), 8)
  b.writeBigUInt64LE(BigInt(t.indexOffset), 16)
  b.writeBigUInt64LE(BigInt(t.dataBytes), 24)
  b.writeUInt32LE(t.indexCrc >>> 0, 32)
  b.writeUInt32LE(zlib.crc32(b.subarray(0, 60)), 60)
  return b
}

/** The trailer, checked against the file's size and the header's disk, before the index is read. */
export function decodeUndoTrailer(b: Buffer, h: UndoHeader, fileSize: number, file: string): UndoTrailer {
  const fail = (field: string, detail: string) => corruptPoint(file, `trailer ${field}: ${detail}`)
  if (b.length < UNDO_TRAILER_SIZE) throw fail('length', `only ${b.length} bytes`)
  if (!b.subarray(0, 8).equals(UNDO_END_MAGIC)) throw fail('magic', 'missing (the record was never completed)')
  if (b.readUInt32LE(60) !== zlib.crc32(b.subarray(0, 60))) throw fail('crc32', 'mismatch')
  if (!allZero(b.subarray(36, 60))) throw fail('reserved', 'not zero')
  const r = new BufferReader(b, fail)
  r.bytes(8, 'magic')
  const t: UndoTrailer = {entryCount: r.u64('entry count'), indexOffset: r.u64('index offset'), dataBytes: r.u64('data bytes'), indexCrc: r.u32('index crc32')}
  if (t.entryCount > blocksOf(h.toDiskSize, h.blockSize))
    throw fail('entry count', `${t.entryCount} for a disk of ${blocksOf(h.toDiskSize, h.blockSize)} blocks`)
  if (t.indexOffset !== UNDO_HEADER_SIZE + t.dataBytes) throw fail('index offset', `${t.indexOffset} does not follow ${t.dataBytes} data bytes`)
  if (t.indexOffset + t.entryCount * UNDO_ENTRY_SIZE + UNDO_TRAILER_SIZE !== fileSize)
    throw fail('entry count', `${t.entryCount} entries at ${t.indexOffset} do not end the file of ${fileSize} bytes`)
  if (t.dataBytes % h.blockSize !== 0) throw fail('data bytes', `${t.dataBytes} is not whole blocks`)
  return t
}

/** The index: sorted, non-overlapping extents inside the disk, data packed in order from the header on. */
export function decodeUndoIndex(b: Buffer, h: UndoHeader, t: UndoTrailer, file: string): UndoExtent[] {
  const fail = (field: string, detail: string) => corruptPoint(file, `index ${field}: ${detail}`)
  if (b.length !== t.entryCount * UNDO_ENTRY_SIZE) throw fail('length', `${b.length} bytes for ${t.entryCount} entries`)
  if (zlib.crc32(b) !== t.indexCrc) throw fail('crc32', 'mismatch')
  const blocks = blocksOf(h.toDiskSize, h.blockSize)
  const maxData = extentMaxBlocks(h.blockSize)
  const out: UndoExtent[] = []
  let nextBlock = 0
  let nextData = UNDO_HEADER_SIZE
  for (let i = 0; i < t.entryCount; i++) {
    const at = i * UNDO_ENTRY_SIZE
    const r = new BufferReader(b.subarray(at, at + UNDO_ENTRY_SIZE), (f, d) => fail(`entry ${i} ${f}`, d))
    const block = r.u64('block')
    const count = r.u32('count')
    const kind = r.u8('kind')
    if (r.u8('reserved') !== 0 || r.u16('reserved') !== 0 || b.readUInt32LE(at + 28) !== 0) throw fail(`entry ${i} reserved`, 'not zero')
    const offset = r.u64('offset')
    const crc = r.u32('crc32')
    if (count === 0) throw fail(`entry ${i} count`, '0')
    if (block < nextBlock) throw fail(`entry ${i} block`, `${block} is out of order or overlaps the entry before`)
    if (block + count > blocks) throw fail(`entry ${i} blocks`, `${block}+${count} beyond the disk's ${blocks}`)
    if (kind === ExtentKind.DATA) {
      if (count > maxData) throw fail(`entry ${i} count`, `${count} blocks exceed an extent's ${maxData}`)
      if (offset !== nextData) throw fail(`entry ${i} offset`, `${offset}, expected ${nextData}`)
      nextData += count * h.blockSize
      out.push({block, count, kind, offset, crc})
    } else if (kind === ExtentKind.ZERO) {
      if (offset !== 0 || crc !== 0) throw fail(`entry ${i}`, 'a zero run with an offset or a crc')
      out.push({block, count, kind, offset, crc})
    } else throw fail(`entry ${i} kind`, String(kind))
    nextBlock = block + count
  }
  if (nextData !== t.indexOffset) throw fail('data', `extents cover ${nextData - UNDO_HEADER_SIZE} bytes, the trailer says ${t.dataBytes}`)
  return out
}
