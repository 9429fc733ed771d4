// Reads a disk in order, a chunk of blocks at a time, READ_AHEAD chunks ahead (the reads of
// the next overlap the consumer's work on this one). Given a hasher, it checksums each chunk
// as it reads it (read-hash.ts: in the thread pool where the addon can). Buffers are shared
// memory (a worker-thread receiver gets sent blocks without a copy) and are reused: a chunk's
// buffer returns to the pool once the next chunk is consumed, unless the consumer `keep()`s
// it because it handed views of it to a transport; a kept buffer returns when the consumer
// `releaseUpTo()` a block past its end (the receiver has written and synced it). Fresh
// buffers cost page faults, so reuse is the point.
// Given `mapWhen` too, a chunk it approves is checksummed through a mapping and not read at all
// (data undefined, `mapped` true): the consumer reads the few blocks it needs with fill().
// Holes are reported per block and never read: only the runs of data blocks in a chunk are.
// A buffered read of a hole is not free: the kernel allocates and zeroes a page-cache page for
// every 4 KiB of it, so reading a sparse disk's chunks whole made the first sync of a sparse
// disk (and of its sparse seed, on the receiver) fill the page cache with gigabytes of zeros,
// ~5x slower than any later sync that found those zero pages cached.
import type {BlockHasher} from '../hash/block-hash.js'
import {dataRuns, holeMap} from './hole-map.js'
import {alignedBuffer} from '../native/direct-io.js'
import {mapAndHashRuns, readAndHashRuns, readAndHashRunsNow, readRuns, type BlockSums, type ReadableDisk} from './read-hash.js'
import type {HeadStart, HeadStartChunk} from './head-start.js'

export interface Chunk {
  first: number
  count: number
  /**
   * The chunk's bytes; undefined when every block is a hole, or the chunk was `mapped` (until fill()). The bytes of a block flagged in
   * `holes` are NOT read (they are whatever the reused buffer held): use `holes` first.
   */
  data: Buffer | undefined
  holes: Uint8Array
  /** The consumer passed views of `data` on: keep the buffer until releaseUpTo() passes it. */
  keep(): void
  /**
   * With a hasher: every block's checksum and zero flag (holes are zero), computed as the
   * chunk was read (in the thread pool where the addon can). Fresh per chunk: views of it
   * may be kept.
   */
  sums?: BlockSums
  /** Checksummed through a mapping: `data` is undefined; ChunkReader.fill() reads blocks. */
  mapped?: boolean
}

/** A chunk's buffer, once it has one (a mapped chunk gets one only if fill() reads into it). */
interface Slot {
  buf?: Buffer
  kept: boolean
}

export type {ReadableDisk}

const MAX_FREE = 64
/**
 * Chunks read ahead of the consumer. Two keep the thread pool busy while the consumer works
 * on one: with the reads and checksums in the pool (read-hash.ts), one ahead left it idle
 * whenever that one was done before the consumer was.
 */
const READ_AHEAD = 2

export class ChunkReader {
  private readonly perChunk: number
  private readonly blockCount: number
  private readonly free: Buffer[] = []
  private readonly kept: Array<{end: number; buf: Buffer}> = []
  private released: (() => void) | undefined
  private failure: Error | undefined

  /**
   * @param maxKept how many kept buffers may be outstanding before reading waits for a
   *   release: memory stays bounded (and fresh pages, which cost a page fault each, few) even
   *   when the reader runs far ahead of the receiver's durable point. It must exceed what is
   *   read between two releases, or reading would wait forever.
   */
  constructor(
    private readonly disk: ReadableDisk,
    private readonly size: number,
    private readonly bs: number,
    chunkBytes: number,
    private readonly maxKept = Number.POSITIVE_INFINITY,
    /** Checksum every block as it is read (Chunk.sums). */
    private readonly hasher?: BlockHasher,
    /**
     * With a hasher: asked as each chunk is started; true means checksum it through a mapping
     * and do not read it (the consumer expects to need few of its bytes).
     */
    private readonly mapWhen?: () => boolean,
    /**
     * Page-aligned chunk memory (where the addon can) instead of shared memory: a local
     * receiver on this thread then writes the blocks sent from it with direct I/O as they are,
     * without a copy. Shared memory is for a receiver in a worker thread (no copy to post it).
     */
    private readonly aligned = false,
    /** Chunks already checksummed through a mapping before the reader started (head-start.ts). */
    private readonly headStart?: HeadStart,
  ) {
    this.perChunk = Math.max(1, Math.floor(chunkBytes / bs))
    this.blockCount = Math.ceil(size / bs)
  }

  get blocksPerChunk(): number {
    return this.perChunk
  }

  /** Kept buffers of chunks that end at or before `block` may be reused. */
  releaseUpTo(block: number): void {
    while (this.kept.length > 0 && this.kept[0].end <= block) {
      const {buf} = this.kept.shift() as {buf: Buffer}
      if (this.free.length < MAX_FREE) this.free.push(buf)
    }
    const r = this.released
    this.released = undefined
    r?.()
  }

  /**
   * The releases will not come (the peer that acknowledges them is gone): a wait for room,
   * and every later one, fails with `err` instead of waiting forever.
   */
  abort(err: Error): void {
    this.failure ??= err
    const r = this.released
    this.released = undefined
    r?.()
  }

  /** Before reading another chunk: wait while too many kept buffers are out. */
  private async room(): Promise<void> {
    while (this.kept.length >= this.maxKept && this.free.length === 0) {
      if (this.failure) throw this.failure
      await new Promise<void>((r) => (this.released = r))
    }
  }

  private buffer(slot: Slot): Buffer {
    slot.buf ??= this.free.pop() ?? this.fresh()
    return slot.buf
  }

  private fresh(): Buffer {
    const size = this.perChunk * this.bs
    return (this.aligned ? alignedBuffer(size) : undefined) ?? Buffer.from(new SharedArrayBuffer(size))
  }

  private start(first: number): {chunk: Promise<Chunk>; slot: Slot} {
    const count = Math.min(this.perChunk, this.blockCount - first)
    const slot: Slot = {kept: false}
    const keep = () => {
      if (slot.kept) return
      // A mapped chunk has no buffer until fill(): keeping it first would let fill()'s buffer
      // be recycled under the views the transport holds.
      if (!slot.buf) throw new Error('keep() of a mapped chunk before fill()')
      slot.kept = true
      this.kept.push({end: first + count, buf: slot.buf})
    }
    const early = this.hasher ? this.headStart?.take(first, count) : undefined
    if (!early) return {chunk: this.startRead(first, count, slot, keep), slot}
    const chunk = early.then(
      (h: HeadStartChunk): Chunk | Promise<Chunk> =>
        h.allHoles
          ? {first, count, data: undefined, holes: h.holes, keep, sums: {sums: Buffer.alloc(0), zero: new Uint8Array(count).fill(1)}}
          : h.sums
            ? {first, count, data: undefined, holes: h.holes, keep, sums: h.sums, mapped: true}
            : this.startRead(first, count, slot, keep), // the mapping failed: read it
    )
    chunk.catch(() => {})
    return {chunk, slot}
  }

  /** Read (or map) and checksum the chunk at `first` now. */
  private startRead(first: number, count: number, slot: Slot, keep: () => void): Promise<Chunk> {
    const {holes, allHoles} = holeMap(this.disk.fd, this.size, this.bs, first, count)
    const len = Math.min(count * this.bs, this.size - first * this.bs)
    if (allHoles) {
      const sums = this.hasher ? {sums: Buffer.alloc(0), zero: new Uint8Array(count).fill(1)} : undefined
      return Promise.resolve({first, count, data: undefined, holes, keep, sums})
    }
    const runs = [...dataRuns(holes, count)]
    const base = first * this.bs
    const hasher = this.hasher
    const readHashed = (h: BlockHasher) =>
      readAndHashRuns(this.disk, h, this.buffer(slot), runs, base, len, this.bs).then((sums): Chunk => ({
        first,
        count,
        data: (slot.buf as Buffer).subarray(0, len),
        holes,
        keep,
        sums,
      }))
    let read: Promise<Chunk>
    if (!hasher) {
      read = readRuns(this.disk, this.buffer(slot), runs, base, len, this.bs).then(() => ({
        first,
        count,
        data: (slot.buf as Buffer).subarray(0, len),
        holes,
        keep,
      }))
    } else if (this.mapWhen?.()) {
      // A mapping that cannot be made, or fails (the file shrank), is read the ordinary way.
      read = mapAndHashRuns(this.disk, hasher, runs, base, len, this.bs).then((sums) =>
        sums ? {first, count, data: undefined, holes, keep, sums, mapped: true} : readHashed(hasher),
      )
    } else {
      read = readHashed(hasher)
    }
    // The read ahead of a consumer that stopped (an error elsewhere, then the disk closed)
    // fails with nobody awaiting it: that must not be an unhandled rejection. A consumer that
    // does await it still sees the failure.
    read.catch(() => {})
    return read
  }

  /**
   * Read runs of blocks (indexes within the chunk) of a mapped chunk into a buffer, which
   * becomes `chunk.data` (kept and released as any chunk's), and checksum them again: what is
   * sent must be what is hashed, and a live disk may have changed since the mapping was hashed.
   * The returned sums cover the chunk; only blocks in the runs are meaningful.
   */
  async fill(chunk: Chunk, runs: Array<[number, number]>): Promise<BlockSums> {
    const slot = this.slots.get(chunk)
    if (!slot || !this.hasher) throw new Error('fill() of a chunk this reader did not hand out')
    const len = Math.min(chunk.count * this.bs, this.size - chunk.first * this.bs)
    const buf = this.buffer(slot)
    // A few blocks, just hashed through the mapping, so in the page cache: read here, not in
    // the thread pool behind the chunks ahead (read-hash.ts, readAndHashRunsNow).
    const sums =
      readAndHashRunsNow(this.disk, this.hasher, buf, runs, chunk.first * this.bs, len, this.bs) ??
      (await readAndHashRuns(this.disk, this.hasher, buf, runs, chunk.first * this.bs, len, this.bs))
    chunk.data = buf.subarray(0, len)
    return sums
  }

  private readonly slots = new WeakMap<Chunk, Slot>()

  async *chunks(): AsyncGenerator<Chunk> {
    const ahead: Array<ReturnType<ChunkReader['start']>> = []
    let nextFirst = 0
    if (this.blockCount > 0) {
      ahead.push(this.start(0))
      nextFirst = this.perChunk
    }
    try {
      while (ahead.length > 0) {
        const current = ahead.shift() as ReturnType<ChunkReader['start']>
        const chunk = await current.chunk
        while (ahead.length < READ_AHEAD && nextFirst < this.blockCount) {
          await this.room()
          ahead.push(this.start(nextFirst))
          nextFirst += this.perChunk
        }
        this.slots.set(chunk, current.slot)
        yield chunk
        const {buf, kept} = current.slot
        if (buf && !kept && this.free.length < MAX_FREE) this.free.push(buf)
      }
    } finally {
      // A consumer that stops early (an error, a break) closes the disk next: the reads started
      // ahead of it run in the thread pool on its fd, which must not be closed (and its number
      // reused by another file) under them.
      await Promise.allSettled(ahead.map((a) => a.chunk))
    }
  }
}

/** Read every chunk of a disk in order, reusing buffers (for consumers that keep nothing). */
export function readChunks(
  disk: ReadableDisk,
  size: number,
  bs: number,
  chunkBytes: number,
  hasher?: BlockHasher,
  mapWhen?: () => boolean,
): AsyncGenerator<Chunk> {
  return new ChunkReader(disk, size, bs, chunkBytes, Number.POSITIVE_INFINITY, hasher, mapWhen).chunks()
}
