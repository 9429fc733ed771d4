// The tracker's control-socket protocol (version 1): what `push`, `fullsync` and `status`
// say to a running tracker. Little-endian. Every frame, in both directions:
//
//  off size field
//    0    4 magic "VDTC"
//    4    1 version (1); a peer with another version gets an ERROR frame and is closed
//    5    1 kind: 1 REQUEST (client), 2 REPLY, 3 ERROR (tracker)
//    6    2 reserved, 0
//    8    4 JSON length: 2 .. MAX_JSON bytes of UTF-8, one object
//   12    4 data length: 0 in a REQUEST; at most MAX_REPLY_DATA in a REPLY
//   16    . JSON, then data
//
// Requests (JSON; one at a time per connection, each answered by a REPLY or an ERROR):
//   {"op":"status"}                 -> status object
//   {"op":"freeze"}                 -> {blockSize, diskSize, blockCount, blocks}; data: the
//                                      frozen bitmap, ceil(blockCount/8) bytes, LSB first
//   {"op":"freeze","preserve":false} -> the same, but no copy-on-write (a full sync that reads
//                                      the disk itself); `read` is then refused
//   {"op":"read","first":N,"count":M} -> {first, count, length}; data: the blocks as of the freeze
//   {"op":"complete","ok":true|false} -> {cleared, mergedBack}
// ERROR JSON: {"code": "...", "exitCode": N, "message": "...", "hint": "..."}; the client reads
// the registered code (doc/protocol.md "Error codes") and never uses exitCode, which is only
// what the tracker's registry says (kept for older clients). A header that breaks the
// rules (magic, version, kind, lengths) closes the connection after the ERROR; a bad JSON
// request gets an ERROR and the connection stays usable. Lengths are checked before any
// buffer is taken.
import {ProtocolError, type ErrorCode} from '../errors.js'

export const CONTROL_MAGIC = Buffer.from('VDTC', 'ascii')
export const CONTROL_VERSION = 1
export const CONTROL_HEADER_SIZE = 16
export const MAX_JSON = 64 * 1024
/** A reply's binary part: a frozen bitmap (1 bit per block) or one read (32 MiB). */
export const MAX_REPLY_DATA = 256 << 20

export const FrameKind = {REQUEST: 1, REPLY: 2, ERROR: 3} as const
export type FrameKindId = (typeof FrameKind)[keyof typeof FrameKind]

export type ControlRequest =
  | {op: 'status'}
  | {op: 'freeze'; preserve: boolean}
  | {op: 'read'; first: number; count: number}
  | {op: 'complete'; ok: boolean}

export interface ControlHeader {
  version: number
  kind: FrameKindId
  jsonLength: number
  dataLength: number
}

export interface ErrorBody {
  code: string
  exitCode: number
  message: string
  hint?: string
}

const bad = (code: ErrorCode, message: string) => new ProtocolError(code, `control socket: ${message}`)

export function encodeFrame(kind: FrameKindId, body: object, data?: Buffer): Buffer[] {
  const json = Buffer.from(JSON.stringify(body), 'utf8')
  if (json.length > MAX_JSON) throw new RangeError(`control message of ${json.length} bytes exceeds ${MAX_JSON}`)
  const dataLength = data?.length ?? 0
  if (dataLength > MAX_REPLY_DATA) throw new RangeError(`control payload of ${dataLength} bytes exceeds ${MAX_REPLY_DATA}`)
  const h = Buffer.alloc(CONTROL_HEADER_SIZE)
  CONTROL_MAGIC.copy(h, 0)
  h.writeUInt8(CONTROL_VERSION, 4)
  h.writeUInt8(kind, 5)
  h.writeUInt32LE(json.length, 8)
  h.writeUInt32LE(dataLength, 12)
  return data && data.length > 0 ? [h, json, data] : [Buffer.concat([h, json])]
}

/**
 * Check a header before reading its body. `from` is who sent it: requests come from
 * clients and carry no data; replies and errors come from the tracker.
 */
export function decodeHeader(h: Buffer, from: 'client' | 'tracker'): ControlHeader {
  if (h.length !== CONTROL_HEADER_SIZE) throw bad('CONTROL_TRUNCATED', `frame header needs ${CONTROL_HEADER_SIZE} bytes, got ${h.length}`)
  if (!h.subarray(0, 4).equals(CONTROL_MAGIC)) throw bad('CONTROL_BAD_MAGIC', `bad magic 0x${h.subarray(0, 4).toString('hex')} (not a vdrep control client)`)
  const version = h.readUInt8(4)
  if (version !== CONTROL_VERSION) throw bad('CONTROL_VERSION', `protocol version ${version} is not supported; this vdrep speaks version ${CONTROL_VERSION}`)
  const kind = h.readUInt8(5)
  const allowed: number[] = from === 'client' ? [FrameKind.REQUEST] : [FrameKind.REPLY, FrameKind.ERROR]
  if (!allowed.includes(kind)) throw bad('CONTROL_BAD_KIND', `frame kind ${kind} is not expected from the ${from}`)
  if (h.readUInt16LE(6) !== 0) throw bad('CONTROL_BAD_RESERVED', `reserved field is 0x${h.readUInt16LE(6).toString(16)}, not 0`)
  const jsonLength = h.readUInt32LE(8)
  if (jsonLength < 2 || jsonLength > MAX_JSON) throw bad('CONTROL_BAD_LENGTH', `JSON length ${jsonLength} is outside 2..${MAX_JSON}`)
  const dataLength = h.readUInt32LE(12)
  const maxData = from === 'client' ? 0 : MAX_REPLY_DATA
  if (dataLength > maxData) throw bad('CONTROL_BAD_LENGTH', `data length ${dataLength} exceeds ${maxData}`)
  return {version, kind: kind as FrameKindId, jsonLength, dataLength}
}

export function decodeJson(buf: Buffer): Record<string, unknown> {
  let v: unknown
  try {
    v = JSON.parse(buf.toString('utf8'))
  } catch {
    throw bad('CONTROL_BAD_JSON', 'the message is not valid JSON')
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('CONTROL_BAD_JSON', 'the message is not a JSON object')
  return v as Record<string, unknown>
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

/** Validate a request object; throws ProtocolError naming the field. */
export function parseRequest(o: Record<string, unknown>): ControlRequest {
  switch (o.op) {
    case 'status':
      return {op: o.op}
    case 'freeze':
      if (o.preserve !== undefined && typeof o.preserve !== 'boolean') throw bad('CONTROL_BAD_REQUEST', `freeze: "preserve" must be true or false, got ${JSON.stringify(o.preserve)}`)
      return {op: 'freeze', preserve: o.preserve !== false}
    case 'read':
      if (!isCount(o.first)) throw bad('CONTROL_BAD_REQUEST', `read: "first" must be a non-negative integer, got ${JSON.stringify(o.first)}`)
      if (!isCount(o.count) || o.count === 0) throw bad('CONTROL_BAD_REQUEST', `read: "count" must be a positive integer, got ${JSON.stringify(o.count)}`)
      return {op: 'read', first: o.first, count: o.count}
    case 'complete':
      if (typeof o.ok !== 'boolean') throw bad('CONTROL_BAD_REQUEST', `complete: "ok" must be true or false, got ${JSON.stringify(o.ok)}`)
      return {op: 'complete', ok: o.ok}
    default:
      throw bad('CONTROL_UNKNOWN_OP', `unknown operation ${JSON.stringify(o.op)}; known: status, freeze, read, complete`)
  }
}

export function parseError(o: Record<string, unknown>): ErrorBody {
  return {
    code: typeof o.code === 'string' ? o.code : 'TRACKER_ERROR',
    exitCode: typeof o.exitCode === 'number' && Number.isInteger(o.exitCode) && o.exitCode > 0 && o.exitCode < 256 ? o.exitCode : 1,
    message: typeof o.message === 'string' ? o.message : 'the tracker reported an error without a message',
    hint: typeof o.hint === 'string' ? o.hint : undefined,
  }
}
