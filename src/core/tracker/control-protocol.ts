// The tracker's control-socket protocol (version 2): what `push`, `fullsync` and `status`
// say to a running tracker. While a tracker runs it is the only process that writes the disk's
// .psf (src/core/change-record/): a push or a full sync asks it for every change of the record
// here, and the tracker runs the same ChangeRecord transition it would run itself.
// Little-endian. Every frame, in both directions:
//
//  off size field
//    0    4 magic "VDTC"
//    4    1 version (2); a peer with another version gets an ERROR frame and is closed
//    5    1 kind: 1 REQUEST (client), 2 REPLY, 3 ERROR (tracker)
//    6    2 reserved, 0
//    8    4 JSON length: 2 .. MAX_JSON bytes of UTF-8, one object
//   12    4 data length: at most MAX_REQUEST_DATA in a REQUEST (only the ops below that take
//          data; 0 otherwise), at most MAX_REPLY_DATA in a REPLY
//   16    . JSON, then data
//
// Requests (JSON; one at a time per connection, each answered by a REPLY or an ERROR):
//   {"op":"status"}                 -> status object
//   {"op":"freeze"}                 -> {blockSize, diskSize, blockCount, blocks}; data: the
//                                      frozen bitmap, ceil(blockCount/8) bytes, LSB first
//   {"op":"freeze","preserve":false} -> the same, but no copy-on-write (a full sync that reads
//                                      the disk itself); `read` is then refused
//   {"op":"freeze","holdMs":H}      -> the same, and the write gate stays closed after the freeze
//                                      (a consistency group's cut) until "release", H ms at most
//   {"op":"release"}                -> {held, expired, heldMs}: writes run again; expired: the
//                                      hold's lease ran out first (the group's cut is void)
//   {"op":"read","first":N,"count":M} -> {first, count, length}; data: the blocks as of the freeze
//   {"op":"complete","ok":true|false} -> {cleared, mergedBack}
//   {"op":"pending"}                -> {blockCount, blocks, verifying}; data: the blocks not on the
//                                      replica yet (active | in-flight), as a freeze's bitmap; changes nothing
// Record transitions (each answered {} once durable in the .psf; see change-record/writer.ts):
//   {"op":"beginCommit","seq":S}     pendingSeq = S (a push is about to send S)
//   {"op":"adoptCommitted","seq":S}  lastSeq = S, pendingSeq = 0 (the replica had committed S)
//   {"op":"blockHashes"}             data: N entries of 40 bytes, u64 block then its 32-byte
//                                    hash: the index entries of the blocks a push shipped
//   {"op":"commit","seq":S,"pointInTimeMs":T,"diskSize":D,"commitId":C}
//                                    lastSeq = S, pendingSeq = 0, lastSyncMs = T, diskSize = D,
//                                    last commit id = C (32 hex digits)
//   {"op":"beginFullSync"}           INDEX_VALID cleared (the index is rewritten from now)
//   {"op":"indexRun","first":B}      data: 32-byte hashes of blocks B.. (B starts an index page)
//   {"op":"provedSync","diskSize":D,"replicaSeq":S,"syncedMs":T,"commitId":C}
//                                    generation + 1, lastSeq = S, last commit id = C, INDEX_VALID set,
//                                    REPLICA_DIVERGED and REPLICA_FOREIGN cleared,
//                                    NEEDS_FULL_SYNC cleared (the bitmaps: `complete`)
//   {"op":"replicaRefused","code":"REPLICA_DIVERGED"|"REPLICA_FOREIGN"|"REPLICA_PROMOTED"}
//                                    the flag of that name set (the replica host refused the sync)
//   {"op":"markBlocks","first":B}    data: a bitmap of blocks B.. (B a multiple of 8, LSB first):
//                                    marked dirty as a VM write would be (a reprotect's owed
//                                    blocks, doc/failover.md); answered {marked} once durable
//   {"op":"settings","settings":{..},"replicaId":R?}
//                                    the replication settings replaced (`vdrep config`; the same
//                                    JSON and checks as the .psf's settings); with R (32 hex
//                                    digits, a new target): the replica binding reset to R, no
//                                    sequence, no commit chain, NEEDS_FULL_SYNC and TARGET_CHANGED set
// ERROR JSON: {"code": "...", "exitCode": N, "message": "...", "hint": "..."}; the client reads
// the registered code (doc/protocol.md "Error codes") and never uses exitCode, which is only
// what the tracker's registry says (kept for older clients). A header that breaks the rules
// (magic, version, kind, lengths) closes the connection after the ERROR; a bad JSON request,
// or data where the op takes none, gets an ERROR (the data is read and dropped) and the
// connection stays usable. Lengths are checked before any buffer is taken.
import {ProtocolError, StateError, type ErrorCode} from '../errors.js'
import {decodeSettings, type ReplicationSettings} from '../psf/settings.js'
import {MAX_HOLD_MS} from './cut-hold.js'

export const CONTROL_MAGIC = Buffer.from('VDTC', 'ascii')
export const CONTROL_VERSION = 2
export const CONTROL_HEADER_SIZE = 16
export const MAX_JSON = 64 * 1024
/** A reply's binary part: a frozen bitmap (1 bit per block) or one read (32 MiB). */
export const MAX_REPLY_DATA = 256 << 20
/** A request's binary part: index hashes (a push sends more in several requests). */
export const MAX_REQUEST_DATA = 16 << 20
/** One entry of a blockHashes request: u64 block, 32-byte hash. */
export const BLOCK_HASH_ENTRY = 40
const HASH_BYTES = 32

export const FrameKind = {REQUEST: 1, REPLY: 2, ERROR: 3} as const
export type FrameKindId = (typeof FrameKind)[keyof typeof FrameKind]

export type ControlRequest =
  | {op: 'status'}
  | {op: 'freeze'; preserve: boolean; holdMs?: number}
  | {op: 'release'}
  | {op: 'read'; first: number; count: number}
  | {op: 'complete'; ok: boolean}
  | {op: 'pending'}
  | {op: 'beginCommit'; seq: number}
  | {op: 'adoptCommitted'; seq: number}
  | {op: 'blockHashes'}
  | {op: 'commit'; seq: number; pointInTimeMs: number; diskSize: number; commitId: string}
  | {op: 'beginFullSync'}
  | {op: 'indexRun'; first: number}
  | {op: 'provedSync'; diskSize: number; replicaSeq: number; syncedMs: number; commitId: string}
  | {op: 'replicaRefused'; code: 'REPLICA_DIVERGED' | 'REPLICA_FOREIGN' | 'REPLICA_PROMOTED'}
  | {op: 'markBlocks'; first: number}
  | {op: 'settings'; settings: ReplicationSettings; replicaId?: string}

/** Ops whose request carries data, and the size its data must be a multiple of. */
const DATA_UNIT: Partial<Record<ControlRequest['op'], number>> = {blockHashes: BLOCK_HASH_ENTRY, indexRun: HASH_BYTES, markBlocks: 1}

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
  const maxData = from === 'client' ? MAX_REQUEST_DATA : MAX_REPLY_DATA
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

function count(op: string, o: Record<string, unknown>, field: string): number {
  const v = o[field]
  if (!isCount(v)) throw bad('CONTROL_BAD_REQUEST', `${op}: "${field}" must be a non-negative integer, got ${JSON.stringify(v)}`)
  return v
}

function commitId(op: string, o: Record<string, unknown>): string {
  return hex32(op, 'commitId', o.commitId)
}

function hex32(op: string, field: string, v: unknown): string {
  if (typeof v !== 'string' || !/^[0-9a-f]{32}$/.test(v))
    throw bad('CONTROL_BAD_REQUEST', `${op}: "${field}" must be 32 lower-case hex digits, got ${JSON.stringify(v)}`)
  return v
}

/** The settings of a `settings` request: the .psf's own decoder decides what is valid. */
function settingsOf(v: unknown): ReplicationSettings {
  try {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new StateError('PSF_CORRUPT', 'not an object')
    return decodeSettings(Buffer.from(JSON.stringify(v), 'utf8'))
  } catch (err) {
    if (err instanceof StateError) throw bad('CONTROL_BAD_REQUEST', `settings: ${err.message}`)
    throw err
  }
}

/** Validate a request object and the length of its data; throws ProtocolError naming the field. */
export function parseRequest(o: Record<string, unknown>, dataLength = 0): ControlRequest {
  const req = parseRequestJson(o)
  const unit = DATA_UNIT[req.op]
  if (unit === undefined && dataLength !== 0) throw bad('CONTROL_BAD_REQUEST', `${req.op}: takes no data, got ${dataLength} bytes`)
  if (unit !== undefined && (dataLength === 0 || dataLength % unit !== 0))
    throw bad('CONTROL_BAD_REQUEST', `${req.op}: data must be a positive multiple of ${unit} bytes, got ${dataLength}`)
  return req
}

function parseRequestJson(o: Record<string, unknown>): ControlRequest {
  switch (o.op) {
    case 'status':
    case 'release':
    case 'pending':
    case 'blockHashes':
    case 'beginFullSync':
      return {op: o.op}
    case 'freeze':
      if (o.preserve !== undefined && typeof o.preserve !== 'boolean')
        throw bad('CONTROL_BAD_REQUEST', `freeze: "preserve" must be true or false, got ${JSON.stringify(o.preserve)}`)
      if (o.holdMs !== undefined && (!isCount(o.holdMs) || o.holdMs < 1 || o.holdMs > MAX_HOLD_MS))
        throw bad('CONTROL_BAD_REQUEST', `freeze: "holdMs" must be an integer from 1 to ${MAX_HOLD_MS}, got ${JSON.stringify(o.holdMs)}`)
      return {op: 'freeze', preserve: o.preserve !== false, ...(o.holdMs === undefined ? {} : {holdMs: o.holdMs})}
    case 'read':
      if (!isCount(o.first)) throw bad('CONTROL_BAD_REQUEST', `read: "first" must be a non-negative integer, got ${JSON.stringify(o.first)}`)
      if (!isCount(o.count) || o.count === 0) throw bad('CONTROL_BAD_REQUEST', `read: "count" must be a positive integer, got ${JSON.stringify(o.count)}`)
      return {op: 'read', first: o.first, count: o.count}
    case 'complete':
      if (typeof o.ok !== 'boolean') throw bad('CONTROL_BAD_REQUEST', `complete: "ok" must be true or false, got ${JSON.stringify(o.ok)}`)
      return {op: 'complete', ok: o.ok}
    case 'beginCommit':
    case 'adoptCommitted':
      return {op: o.op, seq: count(o.op, o, 'seq')}
    case 'commit':
      return {
        op: 'commit',
        seq: count('commit', o, 'seq'),
        pointInTimeMs: count('commit', o, 'pointInTimeMs'),
        diskSize: count('commit', o, 'diskSize'),
        commitId: commitId('commit', o),
      }
    case 'indexRun':
      return {op: 'indexRun', first: count('indexRun', o, 'first')}
    case 'markBlocks': {
      const first = count('markBlocks', o, 'first')
      if (first % 8 !== 0) throw bad('CONTROL_BAD_REQUEST', `markBlocks: "first" must be a multiple of 8, got ${first}`)
      return {op: 'markBlocks', first}
    }
    case 'settings':
      return {op: 'settings', settings: settingsOf(o.settings), ...(o.replicaId === undefined ? {} : {replicaId: hex32('settings', 'replicaId', o.replicaId)})}
    case 'replicaRefused':
      if (o.code !== 'REPLICA_DIVERGED' && o.code !== 'REPLICA_FOREIGN' && o.code !== 'REPLICA_PROMOTED')
        throw bad('CONTROL_BAD_REQUEST', `replicaRefused: "code" must be REPLICA_DIVERGED, REPLICA_FOREIGN or REPLICA_PROMOTED, got ${JSON.stringify(o.code)}`)
      return {op: 'replicaRefused', code: o.code}
    case 'provedSync':
      return {
        op: 'provedSync',
        diskSize: count('provedSync', o, 'diskSize'),
        replicaSeq: count('provedSync', o, 'replicaSeq'),
        syncedMs: count('provedSync', o, 'syncedMs'),
        commitId: commitId('provedSync', o),
      }
    default:
      throw bad(
        'CONTROL_UNKNOWN_OP',
        `unknown operation ${JSON.stringify(o.op)}; known: status, freeze, release, read, complete, pending, beginCommit, adoptCommitted, blockHashes, commit, beginFullSync, indexRun, provedSync, replicaRefused, markBlocks, settings`,
      )
  }
}

/** blockHashes data: entries of a u64 block number and its hash. */
export function encodeBlockHashes(entries: Array<[number, Buffer]>): Buffer {
  const out = Buffer.alloc(entries.length * BLOCK_HASH_ENTRY)
  entries.forEach(([b, h], i) => {
    out.writeBigUInt64LE(BigInt(b), i * BLOCK_HASH_ENTRY)
    h.copy(out, i * BLOCK_HASH_ENTRY + 8, 0, HASH_BYTES)
  })
  return out
}

export function decodeBlockHashes(data: Buffer, blockCount: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>()
  for (let at = 0; at + BLOCK_HASH_ENTRY <= data.length; at += BLOCK_HASH_ENTRY) {
    const b = data.readBigUInt64LE(at)
    if (b >= BigInt(blockCount)) throw bad('CONTROL_BAD_REQUEST', `blockHashes: block ${b} is outside the disk's ${blockCount} blocks`)
    out.set(Number(b), Buffer.from(data.subarray(at + 8, at + BLOCK_HASH_ENTRY)))
  }
  return out
}

export function parseError(o: Record<string, unknown>): ErrorBody {
  return {
    code: typeof o.code === 'string' ? o.code : 'TRACKER_ERROR',
    exitCode: typeof o.exitCode === 'number' && Number.isInteger(o.exitCode) && o.exitCode > 0 && o.exitCode < 256 ? o.exitCode : 1,
    message: typeof o.message === 'string' ? o.message : 'the tracker reported an error without a message',
    hint: typeof o.hint === 'string' ? o.hint : undefined,
  }
}
