// The replica-side journal of a delta bundle, `<replica>.vdrep-journal`. A bundle is written
// here and synced before a byte of the replica changes; the trailer, written and synced last,
// is what makes it complete. Apply is idempotent, so a complete journal found after a crash is
// replayed and an incomplete one discarded: the replica is at the old point or the new one.
//
// Layout (little-endian):
//   header, 64 bytes: magic "VDRJRNL1" (8) | version u16 | reserved u16 | block size u32 |
//     sequence u64 | disk size u64 | replica id (16) | hash algorithm u8 | reserved (7) |
//     crc32 of bytes 0..55 u32 | reserved u32
//   entries: 48-byte entry header, then for a data entry the block's bytes:
//     block u64 | kind u8 (1 data, 2 zero run) | reserved (7) | data: hash (32) / zero: count u64 + 24 zero bytes
//   trailer, 64 bytes: magic "VDRJEND1" (8) | entry count u64 | data bytes u64 | digest (32) |
//     crc32 of bytes 0..55 u32 | reserved u32
// The digest is the bundle digest (see bundleDigest) the client sent in BUNDLE_END.
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import zlib from 'node:zlib'
import {StateError} from '../errors.js'
import {HASH_LENGTH} from '../hash/block-hash.js'
import {fsyncDir} from '../util/fs-atomic.js'
import {writevAll} from '../util/writev-all.js'

export const JOURNAL_MAGIC = Buffer.from('VDRJRNL1', 'ascii')
export const JOURNAL_END_MAGIC = Buffer.from('VDRJEND1', 'ascii')
export const JOURNAL_VERSION = 1
export const JOURNAL_HEADER_SIZE = 64
export const ENTRY_HEADER_SIZE = 48
export const JOURNAL_TRAILER_SIZE = 64
export const EntryKind = {DATA: 1, ZERO: 2} as const

export const JOURNAL_SUFFIX = '.vdrep-journal'

export function journalPathFor(replica: string): string {
  return `${replica}${JOURNAL_SUFFIX}`
}

export interface JournalHeader {
  blockSize: number
  seq: number
  diskSize: number
  replicaId: Buffer
  hashAlgo: number
}

export interface JournalTrailer {
  entryCount: number
  dataBytes: number
  digest: Buffer
}

export type JournalEntry = {kind: typeof EntryKind.DATA; block: number; hash: Buffer} | {kind: typeof EntryKind.ZERO; block: number; count: number}

export function encodeJournalHeader(h: JournalHeader): Buffer {
  const b = Buffer.alloc(JOURNAL_HEADER_SIZE)
  JOURNAL_MAGIC.copy(b, 0)
  b.writeUInt16LE(JOURNAL_VERSION, 8)
  b.writeUInt32LE(h.blockSize, 12)
  b.writeBigUInt64LE(BigInt(h.seq), 16)
  b.writeBigUInt64LE(BigInt(h.diskSize), 24)
  h.replicaId.copy(b, 32)
  b.writeUInt8(h.hashAlgo, 48)
  b.writeUInt32LE(zlib.crc32(b.subarray(0, 56)), 56)
  return b
}

const corrupt = (detail: string) => new StateError('JOURNAL_CORRUPT', `the replica journal is unusable: ${detail}`)

function safeU64(b: Buffer, off: number, field: string): number {
  const v = b.readBigUInt64LE(off)
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`${field} ${v} out of range`)
  return Number(v)
}

export function decodeJournalHeader(b: Buffer): JournalHeader {
  if (b.length < JOURNAL_HEADER_SIZE) throw corrupt('header truncated')
  if (!b.subarray(0, 8).equals(JOURNAL_MAGIC)) throw corrupt('bad header magic')
  if (b.readUInt32LE(56) !== zlib.crc32(b.subarray(0, 56))) throw corrupt('header crc32 mismatch')
  const version = b.readUInt16LE(8)
  if (version !== JOURNAL_VERSION) throw corrupt(`version ${version}`)
  const blockSize = b.readUInt32LE(12)
  if (blockSize < 4096 || blockSize > 4 << 20 || (blockSize & (blockSize - 1)) !== 0) throw corrupt(`block size ${blockSize}`)
  return {
    blockSize,
    seq: safeU64(b, 16, 'sequence'),
    diskSize: safeU64(b, 24, 'disk size'),
    replicaId: Buffer.from(b.subarray(32, 48)),
    hashAlgo: b.readUInt8(48),
  }
}

export function encodeEntryHeader(e: JournalEntry): Buffer {
  const b = Buffer.alloc(ENTRY_HEADER_SIZE)
  b.writeBigUInt64LE(BigInt(e.block), 0)
  b.writeUInt8(e.kind, 8)
  if (e.kind === EntryKind.DATA) e.hash.copy(b, 16)
  else b.writeBigUInt64LE(BigInt(e.count), 16)
  return b
}

export function decodeEntryHeader(b: Buffer): JournalEntry {
  if (b.length < ENTRY_HEADER_SIZE) throw corrupt('entry truncated')
  const block = safeU64(b, 0, 'block')
  const kind = b.readUInt8(8)
  if (kind === EntryKind.DATA) return {kind, block, hash: Buffer.from(b.subarray(16, 16 + HASH_LENGTH))}
  if (kind === EntryKind.ZERO) {
    const count = safeU64(b, 16, 'zero run length')
    if (count === 0) throw corrupt('empty zero run')
    return {kind, block, count}
  }
  throw corrupt(`unknown entry kind ${kind}`)
}

export function encodeJournalTrailer(t: JournalTrailer): Buffer {
  const b = Buffer.alloc(JOURNAL_TRAILER_SIZE)
  JOURNAL_END_MAGIC.copy(b, 0)
  b.writeBigUInt64LE(BigInt(t.entryCount), 8)
  b.writeBigUInt64LE(BigInt(t.dataBytes), 16)
  t.digest.copy(b, 24)
  b.writeUInt32LE(zlib.crc32(b.subarray(0, 56)), 56)
  return b
}

export function decodeJournalTrailer(b: Buffer): JournalTrailer {
  if (b.length < JOURNAL_TRAILER_SIZE) throw corrupt('trailer truncated')
  if (!b.subarray(0, 8).equals(JOURNAL_END_MAGIC)) throw corrupt('no trailer (the bundle never completed)')
  if (b.readUInt32LE(56) !== zlib.crc32(b.subarray(0, 56))) throw corrupt('trailer crc32 mismatch')
  return {entryCount: safeU64(b, 8, 'entry count'), dataBytes: safeU64(b, 16, 'data bytes'), digest: Buffer.from(b.subarray(24, 24 + HASH_LENGTH))}
}

export interface JournalIndexEntry {
  entry: JournalEntry
  /** Where a data entry's bytes start in the journal file. */
  dataOffset: number
}

/** Flushed bytes after which a background fdatasync starts, so seal() has little left to sync. */
const SYNC_EVERY = 16 << 20

/**
 * Appends entries to a new journal file; `seal()` writes the trailer and syncs. It keeps the
 * entry list, so the session that wrote the journal applies it without parsing it back.
 */
export class JournalWriter {
  private pos = JOURNAL_HEADER_SIZE
  private pending: Buffer[] = []
  private pendingReleases: Array<() => void> = []
  private pendingBytes = 0
  private unsynced = 0
  private writing: Promise<void> = Promise.resolve()
  private background: Promise<void> = Promise.resolve()
  private writeError: Error | undefined
  readonly entries: JournalIndexEntry[] = []
  entryCount = 0
  dataBytes = 0

  private constructor(
    readonly path: string,
    private readonly fh: fs.FileHandle,
  ) {}

  static async create(path: string, header: JournalHeader): Promise<JournalWriter> {
    // Never through a symlink (a link at the journal's name would make this truncate and write
    // a file outside the receiver's root).
    const fh = await fs.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600)
    await fh.write(encodeJournalHeader(header), 0, JOURNAL_HEADER_SIZE, 0)
    return new JournalWriter(path, fh)
  }

  /** `release` (a lent receive buffer's) runs once `data` is written to the file. */
  async append(e: JournalEntry, data?: Buffer, release?: () => void): Promise<void> {
    if (release) this.pendingReleases.push(release)
    this.pending.push(encodeEntryHeader(e))
    this.pendingBytes += ENTRY_HEADER_SIZE
    this.entries.push({entry: e, dataOffset: this.pos + this.pendingBytes})
    if (data) {
      this.pending.push(data)
      this.pendingBytes += data.length
      this.dataBytes += data.length
    }
    this.entryCount++
    if (this.pendingBytes >= 4 << 20) await this.flush()
  }

  /**
   * Hand what is pending to the file. The write runs while the session goes on receiving;
   * only a flush that finds the previous write still running waits for it (one in flight).
   */
  private async flush(): Promise<void> {
    await this.writing
    if (this.writeError) throw this.writeError
    if (this.pending.length === 0) return
    const pending = this.pending
    const releases = this.pendingReleases
    const at = this.pos
    this.pending = []
    this.pendingReleases = []
    this.pos += this.pendingBytes
    this.pendingBytes = 0
    this.writing = writevAll(this.fh, pending, at).then(
      (n) => this.written(n),
      (err: Error) => {
        this.writeError ??= err
      },
    )
    if (releases.length > 0) void this.writing.then(() => releases.forEach((r) => r()))
  }

  private written(n: number): void {
    this.unsynced += n
    if (this.unsynced < SYNC_EVERY) return
    // Start write-back of what is written so far while more arrives; seal() waits for it.
    this.unsynced = 0
    this.background = this.background
      .then(() => this.fh.datasync())
      .catch((err: Error) => {
        this.writeError ??= err
      })
  }

  /**
   * Entries durable first, then the trailer that makes the journal complete, durable; then the
   * journal's name: a file's data can be on disk while its directory entry is not, and the
   * apply that follows must never start on a replica whose journal a power cut could take away
   * (found by the power-cut check, issue 22: the replica half applied, the state trusting the
   * previous point).
   */
  async seal(digest: Buffer): Promise<void> {
    await this.flush()
    await this.writing
    await this.background
    if (this.writeError) throw this.writeError
    await this.fh.datasync()
    await this.fh.write(encodeJournalTrailer({entryCount: this.entryCount, dataBytes: this.dataBytes, digest}), 0, JOURNAL_TRAILER_SIZE, this.pos)
    await this.fh.datasync()
    await fsyncDir(path.dirname(this.path))
  }

  async close(): Promise<void> {
    await this.writing
    await this.background
    await this.fh.close()
  }
}

/** Read a complete journal: header, trailer and the entry list; the data is read on apply. */
export async function readJournal(path: string): Promise<{header: JournalHeader; trailer: JournalTrailer; entries: JournalIndexEntry[]}> {
  const fh = await fs.open(path, 'r')
  try {
    const size = (await fh.stat()).size
    if (size < JOURNAL_HEADER_SIZE + JOURNAL_TRAILER_SIZE) throw corrupt(`only ${size} bytes`)
    const hb = Buffer.alloc(JOURNAL_HEADER_SIZE)
    await fh.read(hb, 0, hb.length, 0)
    const header = decodeJournalHeader(hb)
    const tb = Buffer.alloc(JOURNAL_TRAILER_SIZE)
    await fh.read(tb, 0, tb.length, size - JOURNAL_TRAILER_SIZE)
    const trailer = decodeJournalTrailer(tb)
    const entries: JournalIndexEntry[] = []
    const eb = Buffer.alloc(ENTRY_HEADER_SIZE)
    let nextBlock = 0 // entries are in block order and never overlap (apply writes them concurrently)
    let pos = JOURNAL_HEADER_SIZE
    const end = size - JOURNAL_TRAILER_SIZE
    while (pos < end) {
      if (end - pos < ENTRY_HEADER_SIZE) throw corrupt(`entry header cut at offset ${pos}`)
      await fh.read(eb, 0, ENTRY_HEADER_SIZE, pos)
      const entry = decodeEntryHeader(eb)
      if (entry.block < nextBlock) throw corrupt(`entry for block ${entry.block} is out of order`)
      nextBlock = entry.block + (entry.kind === EntryKind.ZERO ? entry.count : 1)
      pos += ENTRY_HEADER_SIZE
      entries.push({entry, dataOffset: pos})
      if (entry.kind === EntryKind.DATA) {
        const len = Math.min(header.blockSize, header.diskSize - entry.block * header.blockSize)
        if (len <= 0) throw corrupt(`block ${entry.block} is beyond the disk`)
        pos += len
      }
    }
    if (pos !== end) throw corrupt('entries overrun the trailer')
    if (entries.length !== trailer.entryCount) throw corrupt(`${entries.length} entries, trailer says ${trailer.entryCount}`)
    return {header, trailer, entries}
  } finally {
    await fh.close()
  }
}
