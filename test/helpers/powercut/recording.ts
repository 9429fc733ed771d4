// The power-cut recorder's log (native/recorder/; format in doc/powercut.md): a
// 16-byte header ("VDPCLOG1", version 1), then records of a 48-byte header, two paths and the
// data. The decoder checks everything before it trusts a length: the header, each record's
// length against what is left and its crc32, the paths against the record. A recording with a
// hole or a torn tail is refused: a crash state built from it would be a guess.
import zlib from 'node:zlib'

export const LOG_MAGIC = Buffer.from('VDPCLOG1', 'ascii')
export const LOG_VERSION = 1
export const LOG_HEADER_SIZE = 16
export const RECORD_HEADER_SIZE = 48

export const Op = {
  CREATE: 1,
  WRITE: 2,
  TRUNCATE: 3,
  FALLOCATE: 4,
  FSYNC: 5,
  FDATASYNC: 6,
  SYNC_RANGE: 7,
  RENAME: 8,
  UNLINK: 9,
  MKDIR: 10,
  RMDIR: 11,
  DIR_FSYNC: 12,
  MMAP_WRITE: 13,
  MSYNC: 14,
  UNSUPPORTED: 15,
} as const
export type OpCode = (typeof Op)[keyof typeof Op]
export const OP_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Op).map(([k, v]) => [v, k.toLowerCase()]))

export interface Recorded {
  /** Position in the log (0-based): the order the kernel saw the operations in. */
  index: number
  op: OpCode
  pid: number
  ino: number
  offset: number
  size: number
  arg: number
  path: string
  path2: string
  data: Buffer
}

export class RecordingError extends Error {}

export function decodeRecording(b: Buffer): Recorded[] {
  if (b.length < LOG_HEADER_SIZE) throw new RecordingError(`recording: ${b.length} bytes, no header`)
  if (!b.subarray(0, 8).equals(LOG_MAGIC)) throw new RecordingError('recording: bad magic')
  const version = b.readUInt16LE(8)
  if (version !== LOG_VERSION) throw new RecordingError(`recording: version ${version}, expected ${LOG_VERSION}`)
  const out: Recorded[] = []
  let at = LOG_HEADER_SIZE
  while (at < b.length) {
    if (b.length - at < RECORD_HEADER_SIZE) throw new RecordingError(`recording: record ${out.length} cut at offset ${at}`)
    const length = b.readUInt32LE(at)
    if (length < RECORD_HEADER_SIZE || length > b.length - at) throw new RecordingError(`recording: record ${out.length} length ${length} at offset ${at}`)
    const rec = b.subarray(at, at + length)
    if (zlib.crc32(rec.subarray(8)) !== rec.readUInt32LE(4)) throw new RecordingError(`recording: record ${out.length} crc32 mismatch at offset ${at}`)
    const op = rec.readUInt8(8)
    if (!(op in OP_NAMES)) throw new RecordingError(`recording: record ${out.length} unknown op ${op}`)
    const l1 = rec.readUInt16LE(44)
    const l2 = rec.readUInt16LE(46)
    if (RECORD_HEADER_SIZE + l1 + l2 > length) throw new RecordingError(`recording: record ${out.length} paths overrun it`)
    const num = (off: number, field: string) => {
      const v = rec.readBigUInt64LE(off)
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RecordingError(`recording: record ${out.length} ${field} ${v}`)
      return Number(v)
    }
    const r: Recorded = {
      index: out.length,
      op: op as OpCode,
      pid: rec.readUInt32LE(12),
      ino: num(16, 'inode'),
      offset: num(24, 'offset'),
      size: num(32, 'size'),
      arg: rec.readUInt32LE(40),
      path: rec.toString('utf8', RECORD_HEADER_SIZE, RECORD_HEADER_SIZE + l1),
      path2: rec.toString('utf8', RECORD_HEADER_SIZE + l1, RECORD_HEADER_SIZE + l1 + l2),
      data: rec.subarray(RECORD_HEADER_SIZE + l1 + l2),
    }
    if (r.op === Op.WRITE && r.data.length !== r.size)
      throw new RecordingError(`recording: record ${r.index} write of ${r.size} bytes carries ${r.data.length}`)
    out.push(r)
    at += length
  }
  return out
}

/** "fdatasync /x/replica.img" for messages. */
export function describeOp(r: Recorded): string {
  const name = OP_NAMES[r.op]
  switch (r.op) {
    case Op.WRITE:
      return `${name} ${r.path} @${r.offset} +${r.size}`
    case Op.TRUNCATE:
      return `${name} ${r.path} to ${r.size}`
    case Op.FALLOCATE:
      return `${name} ${r.path} mode ${r.arg} @${r.offset} +${r.size}`
    case Op.RENAME:
      return `${name} ${r.path} -> ${r.path2}`
    case Op.UNSUPPORTED:
      return `${r.path2} ${r.path}`
    default:
      return `${name} ${r.path}`
  }
}
