// The restore-point query (doc/protocol.md, "Restore points"): a client that holds a disk's
// .psf asks the receiver for the points of the replica its HELLO names (mode POINTS, delta
// port), and may set their retention. Kept apart from messages.ts: its own two frames, its
// own limits. Decoders read through the bounds-checked cursor, check every count against a
// cap and against the bytes left before reading entries, and reject trailing bytes.
import {ProtocolError} from '../errors.js'
import {BufferReader, BufferWriter, strByteLength} from '../util/binary.js'
import {MAX_PATH} from './messages.js'

/** ROOM (4): `vdrep check`'s read-only question "may this path be the replica, and is there room?" (room-messages.ts). */
export const PointsOp = {LIST: 1, SET_RETENTION: 2, DESCRIBE_SOURCE: 3, ROOM: 4} as const
/** Longest host name a DESCRIBE_SOURCE carries (a DNS name is at most 253). */
export const MAX_SOURCE_HOST = 255
/** Longest retention spec a client may send (a policy is a short comma list). */
export const MAX_RETENTION_SPEC = 256
/** Most points (and dropped sequences) one POINTS_LIST carries: 65536 × 49 + 65536 × 8 bytes stay under MAX_PAYLOAD. */
export const MAX_POINTS_LIST = 65536
/** Cap of each text field of POINTS_LIST (the sender clips at a character boundary). */
export const MAX_POINTS_TEXT = 1024
export const POINT_ENTRY_SIZE = 49
const PointFlag = {CURRENT: 1} as const

const fail = (type: string) => (field: string, detail: string) => new ProtocolError('FRAME_MALFORMED', `malformed ${type} frame: ${field}: ${detail}`)

/** What DESCRIBE_SOURCE tells the receiver about the source (shown by `vdrep replicas`). */
export interface SourceDescription {
  /** The protected host's name. */
  host: string
  /** The disk's path on it. */
  disk: string
  rpoSeconds: number
}

export interface PointsRequest {
  op: number
  /** SET_RETENTION: the policy; DESCRIBE_SOURCE: the policy to apply when the replica has none (may be empty); LIST: empty. */
  retention: string
  /** DESCRIBE_SOURCE only. */
  source?: SourceDescription
}

export function encodePointsRequest(m: PointsRequest): Buffer {
  const s = m.source
  const size = 1 + strByteLength(m.retention) + (s ? strByteLength(s.host) + strByteLength(s.disk) + 4 : 0)
  const w = new BufferWriter(size).u8(m.op).str16(m.retention)
  if (s) w.str16(s.host).str16(s.disk).u32(s.rpoSeconds)
  return w.finish()
}

export function decodePointsRequest(b: Buffer): PointsRequest {
  const f = fail('POINTS_REQUEST')
  const r = new BufferReader(b, f)
  const op = r.u8('op')
  if (op !== PointsOp.LIST && op !== PointsOp.SET_RETENTION && op !== PointsOp.DESCRIBE_SOURCE && op !== PointsOp.ROOM) throw f('op', `unknown operation ${op}`)
  const retention = r.str16('retention', MAX_RETENTION_SPEC)
  let source: SourceDescription | undefined
  if (op === PointsOp.DESCRIBE_SOURCE) {
    source = {host: r.str16('host', MAX_SOURCE_HOST), disk: r.str16('disk', MAX_PATH), rpoSeconds: r.u32('rpo seconds')}
    if (source.disk === '' || source.disk.includes('\0')) throw f('disk', 'empty or holds a NUL')
    if (source.host.includes('\0')) throw f('host', 'holds a NUL')
    if (source.rpoSeconds === 0) throw f('rpo seconds', '0')
  }
  r.end('POINTS_REQUEST')
  if ((op === PointsOp.LIST || op === PointsOp.ROOM) && retention !== '') throw f('retention', `must be empty for ${op === PointsOp.LIST ? 'LIST' : 'ROOM'}`)
  if (op === PointsOp.SET_RETENTION && retention.trim() === '') throw f('retention', 'empty')
  return source ? {op, retention, source} : {op, retention}
}

export interface WirePoint {
  seq: number
  timeMs: number
  /** Bytes of the undo record that reaches this point (0 for the current one). */
  bytes: number
  diskSize: number
  /** The last test of this point (`vdrep test stop` records it): when it started and ended, ms since the epoch; 0: never tested. */
  testStartMs: number
  testEndMs: number
  current: boolean
}

export interface PointsList {
  lastSeq: number
  totalBytes: number
  /** Older points not listed (past MAX_POINTS_LIST). */
  omitted: number
  retention: string
  /** Why no older point can be read now; empty: they can. */
  untrusted: string
  /** A damaged record that cut the chain short; empty: none. */
  problem: string
  /** Points a SET_RETENTION dropped. */
  dropped: number[]
  /** Newest first; the current point, when listed, is the first. */
  points: WirePoint[]
}

/** Cut at a character boundary: a split UTF-8 sequence would decode to U+FFFD and overrun the cap. */
function clip(s: string, n: number): string {
  const b = Buffer.from(s, 'utf8')
  if (b.length <= n) return s
  let k = n
  while (k > 0 && (b[k] & 0xc0) === 0x80) k--
  return b.subarray(0, k).toString('utf8')
}

export function encodePointsList(m: PointsList): Buffer {
  if (m.points.length > MAX_POINTS_LIST || m.dropped.length > MAX_POINTS_LIST) throw new RangeError('POINTS_LIST: too many entries')
  const [retention, untrusted, problem] = [m.retention, m.untrusted, m.problem].map((s) => clip(s, MAX_POINTS_TEXT))
  const size =
    8 + 8 + 4 + strByteLength(retention) + strByteLength(untrusted) + strByteLength(problem) + 4 + 8 * m.dropped.length + 4 + POINT_ENTRY_SIZE * m.points.length
  const w = new BufferWriter(size).u64(m.lastSeq).u64(m.totalBytes).u32(m.omitted).str16(retention).str16(untrusted).str16(problem)
  w.u32(m.dropped.length)
  for (const d of m.dropped) w.u64(d)
  w.u32(m.points.length)
  for (const p of m.points)
    w.u64(p.seq)
      .u64(p.timeMs)
      .u64(p.bytes)
      .u64(p.diskSize)
      .u64(p.testStartMs)
      .u64(p.testEndMs)
      .u8(p.current ? PointFlag.CURRENT : 0)
  return w.finish()
}

export function decodePointsList(b: Buffer): PointsList {
  const f = fail('POINTS_LIST')
  const r = new BufferReader(b, f)
  const lastSeq = r.u64('last sequence')
  const totalBytes = r.u64('total bytes')
  const omitted = r.u32('omitted')
  const retention = r.str16('retention', MAX_POINTS_TEXT)
  const untrusted = r.str16('untrusted', MAX_POINTS_TEXT)
  const problem = r.str16('problem', MAX_POINTS_TEXT)
  // Each count is checked against its cap and the bytes left before a single entry is read.
  const nDropped = r.u32('dropped count')
  if (nDropped > MAX_POINTS_LIST || nDropped * 8 > r.remaining) throw f('dropped count', `${nDropped} is more than the cap or the frame holds`)
  const dropped: number[] = []
  for (let i = 0; i < nDropped; i++) dropped.push(r.u64(`dropped ${i}`))
  const count = r.u32('point count')
  if (count > MAX_POINTS_LIST || count * POINT_ENTRY_SIZE !== r.remaining) throw f('point count', `${count} does not match the ${r.remaining} bytes left`)
  const points: WirePoint[] = []
  for (let i = 0; i < count; i++) {
    const p = {
      seq: r.u64('seq'),
      timeMs: r.u64('time'),
      bytes: r.u64('bytes'),
      diskSize: r.u64('disk size'),
      testStartMs: r.u64('test start'),
      testEndMs: r.u64('test end'),
      current: false,
    }
    if (p.testEndMs < p.testStartMs || (p.testEndMs === 0) !== (p.testStartMs === 0))
      throw f('test end', `${p.testEndMs} does not follow the start ${p.testStartMs}`)
    const flags = r.u8('flags')
    if (flags & ~PointFlag.CURRENT) throw f('flags', `reserved bits set in 0x${flags.toString(16)}`)
    p.current = flags === PointFlag.CURRENT
    if (p.current && (i !== 0 || p.seq !== lastSeq)) throw f('flags', `point ${p.seq} is marked current but is not the first or not the last sequence`)
    if (i > 0 && p.seq >= points[i - 1].seq) throw f('seq', `point ${p.seq} is not older than the one before it`)
    if (p.seq > lastSeq) throw f('seq', `point ${p.seq} is newer than the last sequence ${lastSeq}`)
    points.push(p)
  }
  r.end('POINTS_LIST')
  return {lastSeq, totalBytes, omitted, retention, untrusted, problem, dropped, points}
}
