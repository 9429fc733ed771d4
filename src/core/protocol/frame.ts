// Wire frames (see doc/protocol.md). Every frame:
//   off size field
//     0    2 magic 0x5644 ("VD" read as little-endian u16 0x4456... stored bytes 'V','D')
//     2    1 type (FrameType)
//     3    1 flags (0; reserved)
//     4    4 payload length, bytes, <= MAX_PAYLOAD
// Little-endian throughout. The protocol version is agreed in HELLO; data frames carry
// the block hash, which the receiver checks before writing.
import {ProtocolError} from '../errors.js'
import {MAX_BLOCK_SIZE} from '../psf/header.js'

export const FRAME_MAGIC = 0x4456 // bytes 'V' 'D'
export const FRAME_HEADER_SIZE = 8
export const PROTOCOL_VERSION = 2
/** Largest payload: one 4 MiB block plus its fields. Checked before anything is allocated. */
export const MAX_PAYLOAD = MAX_BLOCK_SIZE + 4096

export const FrameType = {
  HELLO: 1,
  HELLO_OK: 2,
  ERROR: 3,
  BLOCK_STATUS: 4,
  DATA: 5,
  ZERO_RUN: 6,
  CHECKPOINT: 7,
  CHECKPOINT_ACK: 8,
  DONE: 9,
  VERIFY_RESULT: 10,
  BUNDLE_BEGIN: 11,
  BUNDLE_END: 12,
  COMMITTED: 13,
  REPROTECT: 14,
  OWED: 15,
  OWED_RECORDED: 16,
  /** Receiver → client, only to a client whose HELLO set KEEPALIVE: "still working" (messages.ts). */
  KEEPALIVE: 17,
  // A consistency group push (group-messages.ts, doc/group-commit.md).
  JOURNALED: 18,
  GROUP_COMMIT: 19,
  GROUP_COMMITTED: 20,
  GROUP_APPLY: 21,
  /** A run of contiguous blocks, compressed with the codec agreed in the hello (compressed-data.ts). */
  DATA_Z: 22,
  // The restore-point query (points-messages.ts); numbered apart so other additions keep 14 on.
  POINTS_REQUEST: 32,
  POINTS_LIST: 33,
  /** The answer to POINTS_REQUEST op ROOM (room-messages.ts). */
  ROOM_INFO: 34,
} as const
export type FrameTypeId = (typeof FrameType)[keyof typeof FrameType]
const KNOWN_TYPES = new Set<number>(Object.values(FrameType))

export interface FrameHeader {
  type: FrameTypeId
  length: number
}

export function encodeFrameHeader(type: FrameTypeId, length: number): Buffer {
  if (length > MAX_PAYLOAD) throw new RangeError(`frame payload ${length} exceeds ${MAX_PAYLOAD}`)
  const b = Buffer.allocUnsafe(FRAME_HEADER_SIZE)
  b.writeUInt16LE(FRAME_MAGIC, 0)
  b.writeUInt8(type, 2)
  b.writeUInt8(0, 3)
  b.writeUInt32LE(length, 4)
  return b
}

/** Validate a frame header: magic, type, flags, length cap. Throws ProtocolError naming the field. */
export function decodeFrameHeader(b: Buffer): FrameHeader {
  if (b.length < FRAME_HEADER_SIZE) throw new ProtocolError('FRAME_TRUNCATED', `frame header needs ${FRAME_HEADER_SIZE} bytes, got ${b.length}`)
  const magic = b.readUInt16LE(0)
  if (magic !== FRAME_MAGIC) throw new ProtocolError('FRAME_BAD_MAGIC', `bad frame magic 0x${magic.toString(16).padStart(4, '0')}`)
  const type = b.readUInt8(2)
  if (!KNOWN_TYPES.has(type)) throw new ProtocolError('FRAME_UNKNOWN_TYPE', `unknown frame type ${type}`)
  const flags = b.readUInt8(3)
  if (flags !== 0) throw new ProtocolError('FRAME_BAD_FLAGS', `frame flags 0x${flags.toString(16)} are reserved`)
  const length = b.readUInt32LE(4)
  if (length > MAX_PAYLOAD) throw new ProtocolError('FRAME_TOO_LARGE', `frame length ${length} exceeds the limit of ${MAX_PAYLOAD}`)
  return {type: type as FrameTypeId, length}
}

export function frameTypeName(type: number): string {
  return Object.entries(FrameType).find(([, v]) => v === type)?.[0] ?? `type ${type}`
}
