// One encode/decode pair per frame type (field tables in doc/protocol.md). Decoders read
// through the bounds-checked cursor and reject trailing bytes, so a malformed payload is a
// ProtocolError naming the field, never a crash or a silent misread.
import {ProtocolError} from '../errors.js'
import {HASH_LENGTH} from '../hash/block-hash.js'
import {BufferReader, BufferWriter, strByteLength} from '../util/binary.js'

export const SyncMode = {
  FULLSYNC: 1,
  DELTA: 2,
  /** Read-only query of the replica's restore points (and setting their retention); delta port. */
  POINTS: 5,
} as const
export const HelloFlag = {
  TRUNCATE_REPLICA: 1 << 0,
  /** Hand a replica that belongs to another source (another replica id) to this one. */
  TAKE_OVER_REPLICA: 1 << 1,
  /** Overwrite a replica that moved on without vdrep (REPLICA_DIVERGED). */
  DISCARD_REPLICA_CHANGES: 1 << 2,
  /**
   * Compare only (`vdrep verify`, `fullsync --dry-run`): a full-sync session that writes nothing
   * on the replica host (no replica, state, journal or points write); DATA and ZERO_RUN refused.
   */
  NO_WRITE: 1 << 3,
  /** Delta port: the promoted side asks the old primary's host to make its disk a replica (doc/failover.md). */
  REPROTECT: 1 << 4,
  /** Delta port: the last push of a planned failover (the source's VM stopped): the commit records `final`. */
  FINAL: 1 << 5,
  /**
   * The client reads KEEPALIVE frames: the receiver sends one whenever it has sent nothing for
   * KEEPALIVE_INTERVAL_MS, so a client can tell a busy receiver from a stopped one (--timeout).
   */
  KEEPALIVE: 1 << 6,
  /** Delta port: a member of a consistency group push: the bundle is journaled and held until the group commits (doc/group-commit.md). */
  GROUP: 1 << 7,
  /**
   * The client offers compressed data (DATA_Z): a codec list follows the path in the HELLO, and
   * the receiver's HELLO_OK ends with the codec it picked (0: none). A receiver that does not
   * know the bit refuses the hello (BAD_FLAGS), and the client asks again without it.
   */
  COMPRESS: 1 << 8,
} as const
export const KNOWN_HELLO_FLAGS =
  HelloFlag.TRUNCATE_REPLICA |
  HelloFlag.TAKE_OVER_REPLICA |
  HelloFlag.DISCARD_REPLICA_CHANGES |
  HelloFlag.NO_WRITE |
  HelloFlag.REPROTECT |
  HelloFlag.FINAL |
  HelloFlag.KEEPALIVE |
  HelloFlag.GROUP |
  HelloFlag.COMPRESS
/**
 * A receiver that agreed to KEEPALIVE sends a frame at least this often while a session runs
 * (a KEEPALIVE when it had nothing else to send): journal writes, applies, fsyncs, scans and
 * proofs longer than this still show a live receiver. A client's --timeout must be longer.
 */
export const KEEPALIVE_INTERVAL_MS = 5_000
/** The byte offset of HELLO.flags (a u32): version 2, mode 1, hash 1, block size 4, disk size 8, replica id 16. */
export const HELLO_FLAGS_OFFSET = 32
/** At most this many codecs in a HELLO's list. */
export const MAX_CODECS = 8
/** Length of a commit id (random, one per proved full sync and per committed push). */
export const COMMIT_ID_LENGTH = 16
export const ReplicaStateKind = {MISSING: 0, INCOMPLETE: 1, COMPLETE: 2} as const
export const BlockKind = {ZERO: 0, HASH: 1, UNKNOWN: 2} as const
export const MAX_PATH = 4096
export const MAX_STATUS_BATCH = 1024

const fail = (type: string) => (field: string, detail: string) => new ProtocolError('FRAME_MALFORMED', `malformed ${type} frame: ${field}: ${detail}`)

export interface Hello {
  version: number
  mode: number
  hashAlgo: number
  blockSize: number
  diskSize: number
  replicaId: Buffer
  flags: number
  /** The commit id the client's record holds for its last sync (zeros: none yet). */
  lastCommit: Buffer
  /** The commit id this sync records on both sides when it succeeds. */
  nextCommit: Buffer
  path: string
  /** With flag COMPRESS: the codecs the client can send, preferred first (compress/codec.ts). */
  codecs?: number[]
}

export function encodeHello(m: Hello): Buffer {
  const codecs = m.flags & HelloFlag.COMPRESS ? (m.codecs ?? []) : []
  const w = new BufferWriter(2 + 1 + 1 + 4 + 8 + 16 + 4 + 2 * COMMIT_ID_LENGTH + strByteLength(m.path) + (m.flags & HelloFlag.COMPRESS ? 1 + codecs.length : 0))
    .u16(m.version)
    .u8(m.mode)
    .u8(m.hashAlgo)
    .u32(m.blockSize)
    .u64(m.diskSize)
    .bytes(m.replicaId)
    .u32(m.flags)
    .bytes(m.lastCommit)
    .bytes(m.nextCommit)
    .str16(m.path)
  if (m.flags & HelloFlag.COMPRESS) {
    w.u8(codecs.length)
    for (const c of codecs) w.u8(c)
  }
  return w.finish()
}

export function decodeHello(b: Buffer): Hello {
  const r = new BufferReader(b, fail('HELLO'))
  const m: Hello = {
    version: r.u16('version'),
    mode: r.u8('mode'),
    hashAlgo: r.u8('hash algorithm'),
    blockSize: r.u32('block size'),
    diskSize: r.u64('disk size'),
    replicaId: Buffer.from(r.bytes(16, 'replica id')),
    flags: r.u32('flags'),
    lastCommit: Buffer.from(r.bytes(COMMIT_ID_LENGTH, 'last commit')),
    nextCommit: Buffer.from(r.bytes(COMMIT_ID_LENGTH, 'next commit')),
    path: r.str16('path', MAX_PATH),
  }
  if (m.flags & HelloFlag.COMPRESS) {
    const n = r.u8('codec count')
    if (n > MAX_CODECS) throw fail('HELLO')('codec count', `${n} is over ${MAX_CODECS}`)
    m.codecs = []
    for (let i = 0; i < n; i++) m.codecs.push(r.u8('codec'))
  }
  r.end('HELLO')
  return m
}

export interface HelloOk {
  version: number
  state: number
  replicaSize: number
  resumeBlock: number
  replicaId: Buffer
  generation: number
  lastSeq: number
  /** Only in answer to a HELLO with flag COMPRESS: the codec the client may send (0: none). */
  codec?: number
}

export function encodeHelloOk(m: HelloOk): Buffer {
  const w = new BufferWriter(2 + 1 + 8 + 8 + 16 + 8 + 8 + (m.codec === undefined ? 0 : 1))
    .u16(m.version)
    .u8(m.state)
    .u64(m.replicaSize)
    .u64(m.resumeBlock)
    .bytes(m.replicaId)
    .u64(m.generation)
    .u64(m.lastSeq)
  if (m.codec !== undefined) w.u8(m.codec)
  return w.finish()
}

/** `offered`: the HELLO had flag COMPRESS, so the answer ends with the codec picked. */
export function decodeHelloOk(b: Buffer, offered = false): HelloOk {
  const r = new BufferReader(b, fail('HELLO_OK'))
  const m: HelloOk = {
    version: r.u16('version'),
    state: r.u8('state'),
    replicaSize: r.u64('replica size'),
    resumeBlock: r.u64('resume block'),
    replicaId: Buffer.from(r.bytes(16, 'replica id')),
    generation: r.u64('generation'),
    lastSeq: r.u64('last sequence'),
  }
  if (offered) m.codec = r.u8('codec')
  r.end('HELLO_OK')
  return m
}

export interface ErrorMsg {
  /**
   * The sender's exit code for `code`, kept on the wire for older clients. A client MUST NOT
   * use it: it maps `code` through its own registry (RemoteError), so a peer cannot pick it.
   */
  exitCode: number
  /** A registered error code (doc/protocol.md "Error codes"). */
  code: string
  message: string
  hint: string
}

export function encodeError(m: ErrorMsg): Buffer {
  // Cut at a character boundary: a split UTF-8 sequence would decode to U+FFFD (3 bytes) and overrun the limit.
  const clip = (s: string, n: number) => {
    const b = Buffer.from(s, 'utf8')
    if (b.length <= n) return s
    let k = n
    while (k > 0 && (b[k] & 0xc0) === 0x80) k--
    return b.subarray(0, k).toString('utf8')
  }
  const code = clip(m.code, 64)
  const message = clip(m.message, 2048)
  const hint = clip(m.hint, 1024)
  return new BufferWriter(2 + strByteLength(code) + strByteLength(message) + strByteLength(hint))
    .u16(m.exitCode)
    .str16(code)
    .str16(message)
    .str16(hint)
    .finish()
}

export function decodeError(b: Buffer): ErrorMsg {
  const r = new BufferReader(b, fail('ERROR'))
  const m = {exitCode: r.u16('exit code'), code: r.str16('code', 64), message: r.str16('message', 4096), hint: r.str16('hint', 4096)}
  r.end('ERROR')
  return m
}

/** Receiver → client: what the replica holds for a run of blocks, as it is scanned. */
export interface BlockStatus {
  startBlock: number
  kinds: Uint8Array
  /** HASH_LENGTH bytes for each HASH entry, in order. */
  hashes: Buffer
}

export function encodeBlockStatus(m: BlockStatus): Buffer {
  return new BufferWriter(8 + 4 + m.kinds.length + m.hashes.length).u64(m.startBlock).u32(m.kinds.length).bytes(m.kinds).bytes(m.hashes).finish()
}

export function decodeBlockStatus(b: Buffer): BlockStatus {
  const f = fail('BLOCK_STATUS')
  const r = new BufferReader(b, f)
  const startBlock = r.u64('start block')
  const count = r.u32('count')
  if (count === 0 || count > MAX_STATUS_BATCH) throw f('count', `${count} is outside 1..${MAX_STATUS_BATCH}`)
  const kinds = r.bytes(count, 'kinds')
  let hashed = 0
  for (const k of kinds) {
    if (k === BlockKind.HASH) hashed++
    else if (k !== BlockKind.ZERO && k !== BlockKind.UNKNOWN) throw f('kind', `unknown block kind ${k}`)
  }
  const hashes = r.bytes(hashed * HASH_LENGTH, 'hashes')
  r.end('BLOCK_STATUS')
  return {startBlock, kinds, hashes}
}

export interface DataHeader {
  block: number
  hash: Buffer
}
export const DATA_FIELDS_SIZE = 8 + HASH_LENGTH

export function encodeDataFields(block: number, hash: Buffer): Buffer {
  return new BufferWriter(DATA_FIELDS_SIZE).u64(block).bytes(hash).finish()
}

/** A DATA frame: `b` is the whole payload, or only its fields when the reader split off `body`. */
export function decodeData(b: Buffer, body?: Buffer): {block: number; hash: Buffer; data: Buffer} {
  const r = new BufferReader(b, fail('DATA'))
  const block = r.u64('block')
  const hash = r.bytes(HASH_LENGTH, 'hash')
  if (body) r.end('DATA')
  return {block, hash, data: body ?? b.subarray(DATA_FIELDS_SIZE)}
}

export function encodeRange(start: number, count: number): Buffer {
  return new BufferWriter(16).u64(start).u64(count).finish()
}

export function decodeRange(b: Buffer, type: string): {start: number; count: number} {
  const r = new BufferReader(b, fail(type))
  const m = {start: r.u64('start'), count: r.u64('count')}
  r.end(type)
  return m
}

export function encodeU64(v: number): Buffer {
  return new BufferWriter(8).u64(v).finish()
}

export function decodeU64(b: Buffer, type: string): number {
  const r = new BufferReader(b, fail(type))
  const v = r.u64('value')
  r.end(type)
  return v
}

export interface Done {
  blockCount: number
  digest: Buffer
}

export function encodeDone(m: Done): Buffer {
  return new BufferWriter(8 + HASH_LENGTH).u64(m.blockCount).bytes(m.digest).finish()
}

export function decodeDone(b: Buffer): Done {
  const r = new BufferReader(b, fail('DONE'))
  const m = {blockCount: r.u64('block count'), digest: Buffer.from(r.bytes(HASH_LENGTH, 'digest'))}
  r.end('DONE')
  return m
}

export interface VerifyResult {
  ok: boolean
  digest: Buffer
}

export function encodeVerifyResult(m: VerifyResult): Buffer {
  return new BufferWriter(1 + HASH_LENGTH)
    .u8(m.ok ? 1 : 0)
    .bytes(m.digest)
    .finish()
}

export function decodeVerifyResult(b: Buffer): VerifyResult {
  const r = new BufferReader(b, fail('VERIFY_RESULT'))
  const ok = r.u8('ok')
  if (ok > 1) throw new ProtocolError('FRAME_MALFORMED', `malformed VERIFY_RESULT frame: ok: ${ok}`)
  const m = {ok: ok === 1, digest: Buffer.from(r.bytes(HASH_LENGTH, 'digest'))}
  r.end('VERIFY_RESULT')
  return m
}

/** Client → receiver, delta port: a bundle of `blockCount` blocks for sequence `seq` follows. */
export interface BundleBegin {
  seq: number
  blockCount: number
  /** The source disk size now (a grown disk grows the replica when the bundle commits). */
  diskSize: number
}

export function encodeBundleBegin(m: BundleBegin): Buffer {
  return new BufferWriter(24).u64(m.seq).u64(m.blockCount).u64(m.diskSize).finish()
}

export function decodeBundleBegin(b: Buffer): BundleBegin {
  const r = new BufferReader(b, fail('BUNDLE_BEGIN'))
  const m = {seq: r.u64('sequence'), blockCount: r.u64('block count'), diskSize: r.u64('disk size')}
  r.end('BUNDLE_BEGIN')
  return m
}

/** Client → receiver: the bundle is complete; `digest` covers every entry sent, in order (bundle-digest.ts). */
export interface BundleEnd {
  seq: number
  blockCount: number
  digest: Buffer
}

export function encodeBundleEnd(m: BundleEnd): Buffer {
  return new BufferWriter(16 + HASH_LENGTH).u64(m.seq).u64(m.blockCount).bytes(m.digest).finish()
}

export function decodeBundleEnd(b: Buffer): BundleEnd {
  const r = new BufferReader(b, fail('BUNDLE_END'))
  const m = {seq: r.u64('sequence'), blockCount: r.u64('block count'), digest: Buffer.from(r.bytes(HASH_LENGTH, 'digest'))}
  r.end('BUNDLE_END')
  return m
}

/** Receiver → client: the bundle is applied and recorded, with the receiver's own timings. */
export interface Committed {
  seq: number
  journalMs: number
  applyMs: number
}

export function encodeCommitted(m: Committed): Buffer {
  return new BufferWriter(16)
    .u64(m.seq)
    .u32(Math.min(0xffffffff, Math.round(m.journalMs)))
    .u32(Math.min(0xffffffff, Math.round(m.applyMs)))
    .finish()
}

export function decodeCommitted(b: Buffer): Committed {
  const r = new BufferReader(b, fail('COMMITTED'))
  const m = {seq: r.u64('sequence'), journalMs: r.u32('journal ms'), applyMs: r.u32('apply ms')}
  r.end('COMMITTED')
  return m
}

/** KEEPALIVE (17): no payload. Anything else is malformed. */
export function decodeKeepalive(b: Buffer): void {
  if (b.length !== 0) throw fail('KEEPALIVE')('payload', `${b.length} bytes; a keepalive has none`)
}
