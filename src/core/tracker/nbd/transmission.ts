// Transmission phase wire format: the 28-byte request, its validation (done before any
// payload is read or any buffer taken), and the replies, simple and structured.

import type {NbdExtent} from './backend.js'
import * as C from './constants.js'

export interface NbdRequest {
  flags: number
  type: number
  /** Opaque 8 bytes, echoed in every reply. */
  handle: Buffer
  /** Unsigned 64-bit; kept as bigint until checked against the export size. */
  offset: bigint
  length: number
}

/** What validation needs to know about the negotiated session. */
export interface RequestLimits {
  size: number
  maxPayload: number
  readOnly: boolean
  /** base:allocation was negotiated (implies structured replies). */
  blockStatus: boolean
}

export interface RequestError {
  error: number
  message: string
}

/** Decode a request header; null if the magic is wrong (the caller must hang up). */
export function parseRequest(header: Buffer): NbdRequest | null {
  if (header.readUInt32BE(0) !== C.NBD_REQUEST_MAGIC) return null
  return {
    flags: header.readUInt16BE(4),
    type: header.readUInt16BE(6),
    handle: Buffer.from(header.subarray(8, 16)),
    offset: header.readBigUInt64BE(16),
    length: header.readUInt32BE(24),
  }
}

const KNOWN_TYPES = new Set([C.NBD_CMD_READ, C.NBD_CMD_WRITE, C.NBD_CMD_FLUSH, C.NBD_CMD_TRIM, C.NBD_CMD_WRITE_ZEROES, C.NBD_CMD_BLOCK_STATUS])
const WRITE_TYPES = new Set([C.NBD_CMD_WRITE, C.NBD_CMD_TRIM, C.NBD_CMD_WRITE_ZEROES])

export function isWriteType(type: number): boolean {
  return WRITE_TYPES.has(type)
}

function flagsAllowed(type: number): number {
  switch (type) {
    case C.NBD_CMD_WRITE_ZEROES:
      return C.NBD_CMD_FLAG_FUA | C.NBD_CMD_FLAG_NO_HOLE
    case C.NBD_CMD_BLOCK_STATUS:
      return C.NBD_CMD_FLAG_FUA | C.NBD_CMD_FLAG_REQ_ONE
    default:
      return C.NBD_CMD_FLAG_FUA // valid on every command once SEND_FUA is advertised
  }
}

/**
 * Check a request against the session, in the order the spec and nbdkit use: command,
 * flags, permission, reserved fields, length, range. Null means valid. NBD_CMD_DISC is
 * handled before this is called.
 */
export function validateRequest(req: NbdRequest, lim: RequestLimits): RequestError | null {
  const name = C.COMMAND_NAMES[req.type]
  if (!KNOWN_TYPES.has(req.type)) {
    return {error: C.NBD_EINVAL, message: `unsupported command ${name ?? req.type}`}
  }
  const bad = req.flags & ~flagsAllowed(req.type)
  if (bad !== 0) return {error: C.NBD_EINVAL, message: `command flags 0x${bad.toString(16)} are not valid for ${name}`}
  if (lim.readOnly && isWriteType(req.type)) return {error: C.NBD_EPERM, message: `${name} refused: the export is read-only`}
  if (req.type === C.NBD_CMD_FLUSH) {
    if (req.offset !== 0n || req.length !== 0) return {error: C.NBD_EINVAL, message: 'flush must have offset and length 0'}
    return null
  }
  if (req.type === C.NBD_CMD_BLOCK_STATUS && !lim.blockStatus) {
    return {error: C.NBD_EINVAL, message: 'block-status needs base:allocation negotiated first'}
  }
  if (req.length === 0) return {error: C.NBD_EINVAL, message: `${name} of length 0`}
  if ((req.type === C.NBD_CMD_READ || req.type === C.NBD_CMD_WRITE) && req.length > lim.maxPayload) {
    return {error: C.NBD_EINVAL, message: `${name} of ${req.length} bytes is over the ${lim.maxPayload}-byte limit`}
  }
  // In numbers, not bigints (per request): past 2^53 an offset rounds, but stays past any size.
  if (Number(req.offset) + req.length > lim.size) {
    const error = isWriteType(req.type) ? C.NBD_ENOSPC : C.NBD_EINVAL
    return {error, message: `${name} of ${req.length} bytes at offset ${req.offset} is beyond the end of the export (${lim.size} bytes)`}
  }
  return null
}

// ---- replies ---------------------------------------------------------------------------

export function encodeSimpleReply(handle: Buffer, error: number): Buffer {
  // Every byte is written below (magic, error, the 8-byte handle): no zero fill needed.
  const b = Buffer.allocUnsafe(C.SIMPLE_REPLY_HEADER_SIZE)
  b.writeUInt32BE(C.NBD_SIMPLE_REPLY_MAGIC, 0)
  b.writeUInt32BE(error, 4)
  handle.copy(b, 8)
  return b
}

/** Header of one structured reply chunk, with room for `extra` payload bytes after it. */
function chunkHeader(handle: Buffer, flags: number, type: number, payloadLength: number, extra: number): Buffer {
  const b = Buffer.alloc(C.STRUCTURED_REPLY_HEADER_SIZE + extra)
  b.writeUInt32BE(C.NBD_STRUCTURED_REPLY_MAGIC, 0)
  b.writeUInt16BE(flags, 4)
  b.writeUInt16BE(type, 6)
  handle.copy(b, 8)
  b.writeUInt32BE(payloadLength, 16)
  return b
}

/** Header of a final NBD_REPLY_TYPE_OFFSET_DATA chunk; the data follows it on the wire. */
export function encodeOffsetDataHeader(handle: Buffer, offset: number, dataLength: number): Buffer {
  const b = chunkHeader(handle, C.NBD_REPLY_FLAG_DONE, C.NBD_REPLY_TYPE_OFFSET_DATA, 8 + dataLength, 8)
  b.writeBigUInt64BE(BigInt(offset), C.STRUCTURED_REPLY_HEADER_SIZE)
  return b
}

/** A final NBD_REPLY_TYPE_ERROR chunk carrying a message (cut to 4096 bytes). */
export function encodeErrorChunk(handle: Buffer, error: number, message: string): Buffer {
  let text = Buffer.from(message, 'utf8')
  if (text.length > C.MAX_STRING_LENGTH) text = text.subarray(0, C.MAX_STRING_LENGTH)
  const b = chunkHeader(handle, C.NBD_REPLY_FLAG_DONE, C.NBD_REPLY_TYPE_ERROR, 6 + text.length, 6 + text.length)
  b.writeUInt32BE(error, 20)
  b.writeUInt16BE(text.length, 24)
  text.copy(b, 26)
  return b
}

/**
 * Turn backend extents into descriptors for [offset, offset+length): drop empty ones,
 * clip to the request, merge neighbours with equal status, cap the count (one with
 * REQ_ONE). At least one descriptor, or null if the backend gave nothing usable.
 */
export function extentsToDescriptors(extents: NbdExtent[], length: number, reqOne: boolean): Array<[number, number]> | null {
  const out: Array<[number, number]> = []
  const max = reqOne ? 1 : C.MAX_EXTENTS
  let covered = 0
  for (const e of extents) {
    if (covered >= length) break
    if (!(e.length > 0)) continue
    const len = Math.min(e.length, length - covered)
    const flags = (e.hole ? C.NBD_STATE_HOLE : 0) | (e.zero ? C.NBD_STATE_ZERO : 0)
    const last = out[out.length - 1]
    if (last && last[1] === flags) last[0] += len
    else if (out.length < max) out.push([len, flags])
    else break
    covered += len
  }
  return out.length === 0 ? null : out
}

export function encodeBlockStatusChunk(handle: Buffer, contextId: number, descriptors: Array<[number, number]>): Buffer {
  const payload = 4 + 8 * descriptors.length
  const b = chunkHeader(handle, C.NBD_REPLY_FLAG_DONE, C.NBD_REPLY_TYPE_BLOCK_STATUS, payload, payload)
  b.writeUInt32BE(contextId, 20)
  descriptors.forEach(([len, flags], i) => {
    b.writeUInt32BE(len, 24 + 8 * i)
    b.writeUInt32BE(flags, 28 + 8 * i)
  })
  return b
}
