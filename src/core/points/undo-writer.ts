// Writes one undo record: extents appended in block order (data packed from the header on,
// zero runs as runs), then the index and trailer, synced, then renamed into place and the
// folder synced. Until publish() the record has a temp name nobody reads, so a crash leaves
// either no record or a complete, durable one.
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import zlib from 'node:zlib'
import {fsyncDir} from '../util/fs-atomic.js'
import {writevAll} from '../util/writev-all.js'
import {startWriteback} from '../native/performance-hints.js'
import {tempUndoPath, undoName} from './store.js'
import {
  encodeUndoEntry,
  encodeUndoHeader,
  encodeUndoTrailer,
  extentMaxBlocks,
  ExtentKind,
  UNDO_HEADER_SIZE,
  UNDO_TRAILER_SIZE,
  type UndoExtent,
  type UndoHeader,
} from './undo-format.js'

/** Pending data handed to the file at a time (two writes in flight). */
const FLUSH_BYTES = 4 << 20

export class UndoWriter {
  readonly extents: UndoExtent[] = []
  private pos = UNDO_HEADER_SIZE
  private pending: Buffer[] = []
  private pendingReleases: Array<() => void> = []
  private pendingBytes = 0
  /** Every write handed to the file so far (seal waits for all). */
  private writing: Promise<void> = Promise.resolve()
  /** The newest write and the one before it: two in flight, so the capture reads on while one lands. */
  private lastWrite: Promise<void> = Promise.resolve()
  private prevWrite: Promise<void> = Promise.resolve()
  /** Write-back started on what was written (a hint; awaited before the file is closed). */
  private writeback: Promise<void> = Promise.resolve()
  private failed: Error | undefined
  private nextBlock = 0
  readonly final: string

  private constructor(
    readonly dir: string,
    readonly header: UndoHeader,
    private readonly tmp: string,
    private readonly fh: fs.FileHandle,
  ) {
    this.final = path.join(dir, undoName(header.fromSeq, header.toSeq))
  }

  static async create(dir: string, header: UndoHeader): Promise<UndoWriter> {
    const tmp = tempUndoPath(dir, undoName(header.fromSeq, header.toSeq))
    const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
    return new UndoWriter(dir, header, tmp, fh)
  }

  /** Bytes the record holds so far (header and data; the index comes at seal). */
  get dataBytes(): number {
    return this.pos + this.pendingBytes - UNDO_HEADER_SIZE
  }

  /**
   * Blocks from `block` on, `data.length / blockSize` of them, as they were at `from`.
   * `release` (a pooled buffer's) runs once `data` is written to the file, never before.
   */
  addData(block: number, data: Buffer, release?: () => void): void {
    this.order(block)
    if (release) this.pendingReleases.push(release)
    const bs = this.header.blockSize
    const max = extentMaxBlocks(bs)
    for (let at = 0; at < data.length;) {
      const last = this.extents[this.extents.length - 1]
      const b = block + at / bs
      let room = max
      let ext: UndoExtent
      if (last && last.kind === ExtentKind.DATA && last.block + last.count === b && last.count < max) {
        ext = last
        room = max - last.count
      } else {
        ext = {block: b, count: 0, kind: ExtentKind.DATA, offset: this.pos + this.pendingBytes, crc: 0}
        this.extents.push(ext)
      }
      const take = Math.min(room * bs, data.length - at)
      const part = data.subarray(at, at + take)
      ext.crc = zlib.crc32(part, ext.crc)
      ext.count += take / bs
      this.pending.push(part)
      this.pendingBytes += take
      at += take
    }
    this.nextBlock = block + data.length / bs
  }

  /** Blocks that read as zeros at `from` (holes included): a run, never data. */
  addZero(block: number, count: number): void {
    this.order(block)
    const last = this.extents[this.extents.length - 1]
    if (last && last.kind === ExtentKind.ZERO && last.block + last.count === block && last.count + count <= 0xffffffff) last.count += count
    else this.extents.push({block, count, kind: ExtentKind.ZERO, offset: 0, crc: 0})
    this.nextBlock = block + count
  }

  private order(block: number): void {
    if (this.failed) throw this.failed
    if (block < this.nextBlock) throw new RangeError(`undo record: block ${block} after ${this.nextBlock}`)
  }

  /** Hand pending data to the file when there is enough of it (one write in flight). */
  async maybeFlush(): Promise<void> {
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush()
  }

  private async flush(): Promise<void> {
    await this.prevWrite
    if (this.failed) throw this.failed
    if (this.pending.length === 0) return
    const parts = this.pending
    const releases = this.pendingReleases
    const at = this.pos
    this.pos += this.pendingBytes
    this.pending = []
    this.pendingReleases = []
    this.pendingBytes = 0
    const w = writevAll(this.fh, parts, at).then(
      (n) => {
        releases.forEach((done) => done())
        // The device starts on the pre-images while the bundle is still arriving, so the seal's
        // fdatasync (which alone makes them durable) waits for little; its failure is only a lost hint.
        const wb = startWriteback(this.fh.fd, at, n)
        if (wb) this.writeback = this.writeback.then(() => wb).catch(() => {})
      },
      (err: Error) => {
        // Not handed back: a failed write may still be reading them (the pool allocates anew).
        this.failed ??= err
      },
    )
    this.prevWrite = this.lastWrite
    this.lastWrite = w
    this.writing = Promise.all([this.writing, w]).then(() => undefined)
  }

  /** Data, index and trailer written and synced: complete and durable under its temp name. */
  async seal(): Promise<void> {
    await this.flush()
    await this.writing
    if (this.failed) throw this.failed
    const index = Buffer.concat(this.extents.map(encodeUndoEntry))
    const trailer = encodeUndoTrailer({
      entryCount: this.extents.length,
      indexOffset: this.pos,
      dataBytes: this.pos - UNDO_HEADER_SIZE,
      indexCrc: zlib.crc32(index),
    })
    await writevAll(this.fh, [index, trailer], this.pos)
    await this.fh.write(encodeUndoHeader(this.header), 0, UNDO_HEADER_SIZE, 0)
    await this.writeback
    await this.fh.datasync()
  }

  /** The record's size once sealed. */
  get size(): number {
    return this.pos + this.extents.length * 32 + UNDO_TRAILER_SIZE
  }

  /** Renamed into place, folder synced: from here the record is the point's undo. */
  async publish(): Promise<void> {
    await this.writeback
    await this.fh.close()
    await fs.rename(this.tmp, this.final)
    await fsyncDir(this.dir)
  }

  /** Given up: the temp file goes. */
  async abort(): Promise<void> {
    await this.writing.catch(() => {})
    await this.writeback
    await this.fh.close().catch(() => {})
    await fs.rm(this.tmp, {force: true})
  }
}
