// A head start on the source's checksums (issue 21): a full sync against a seed hashes the
// whole source, and that used to begin only once the SSH login, the tunnel and the HELLO were
// done, time in which this host's cores sat mostly idle. The head start checksums the first
// chunks through a mapping (read-hash.ts: nothing is read into memory, nothing is kept but the
// checksums) from before the connection is made; the chunk reader (chunk-reader.ts) takes each
// chunk's checksums from here instead of hashing it again, and hashes the rest as before.
//
// Only what the reader would have done itself, earlier: the same chunks, through a mapping, as
// the reader maps a chunk while few blocks travel. The blocks that are sent are read and hashed
// again when they are sent (ChunkReader.fill), so what travels is what was hashed, as before.
// Bounded: HEAD_START_BLOCKS blocks' checksums (2.2 MiB), two chunks in the thread pool at
// once (the chunk reader's own read-ahead), and it stops where the reader catches up.
import type {BlockHasher} from '../hash/block-hash.js'
import {trace} from '../util/trace.js'
import {dataRuns, holeMap} from './hole-map.js'
import {canMapHashing, mapAndHashRuns, type BlockSums, type ReadableDisk} from './read-hash.js'

/** At most this many blocks are checksummed ahead: 2^17 (8 GiB of disk at 64 KiB blocks). */
export const HEAD_START_BLOCKS = 1 << 17
const IN_FLIGHT = 2

/** VDREP_HEAD_START=0 turns it off (the bench's A/B of it: bench/seed-phases.ts --ab). */
const headStartOn = process.env.VDREP_HEAD_START !== '0'

/** One chunk hashed ahead: its holes and checksums as of its hashing (undefined: the mapping failed, read it). */
export interface HeadStartChunk {
  holes: Uint8Array
  allHoles: boolean
  sums: BlockSums | undefined
}

export class HeadStart {
  private readonly hashed = new Map<number, Promise<HeadStartChunk>>()
  private readonly perChunk: number
  private readonly blockCount: number
  /** No chunk at or beyond this is started (the reader caught up, or stop()). */
  private limit: number
  private next = 0
  private running = 0
  private finished = 0
  private taken = false

  /** Undefined when mapped hashing is not possible here: the reader then hashes everything itself. */
  static start(disk: ReadableDisk, size: number, bs: number, chunkBytes: number, hasher: BlockHasher, maxBlocks = HEAD_START_BLOCKS): HeadStart | undefined {
    if (!headStartOn || !canMapHashing(disk, hasher) || size <= 0) return undefined
    return new HeadStart(disk, size, bs, chunkBytes, hasher, maxBlocks)
  }

  private constructor(
    private readonly disk: ReadableDisk,
    private readonly size: number,
    private readonly bs: number,
    chunkBytes: number,
    private readonly hasher: BlockHasher,
    maxBlocks: number,
  ) {
    this.perChunk = Math.max(1, Math.floor(chunkBytes / bs))
    this.blockCount = Math.ceil(size / bs)
    this.limit = Math.min(this.blockCount, maxBlocks)
    trace('head start: begins')
    for (let i = 0; i < IN_FLIGHT; i++) this.launch()
  }

  get blocksPerChunk(): number {
    return this.perChunk
  }

  /** Blocks whose chunks were started (hashed or in the thread pool). */
  get startedUpTo(): number {
    return this.next
  }

  private launch(): void {
    if (this.next >= this.limit) return
    const first = this.next
    this.next += this.perChunk
    this.running++
    const p = this.hashChunk(first).finally(() => {
      this.running--
      this.finished++
      this.launch()
    })
    p.catch(() => {})
    this.hashed.set(first, p)
  }

  private async hashChunk(first: number): Promise<HeadStartChunk> {
    const count = Math.min(this.perChunk, this.blockCount - first)
    const {holes, allHoles} = holeMap(this.disk.fd, this.size, this.bs, first, count)
    if (allHoles) return {holes, allHoles, sums: undefined}
    const len = Math.min(count * this.bs, this.size - first * this.bs)
    const sums = await mapAndHashRuns(this.disk, this.hasher, [...dataRuns(holes, count)], first * this.bs, len, this.bs)
    return {holes, allHoles, sums}
  }

  /**
   * The chunk at `first` (of `count` blocks), if it was started here: the reader uses it instead
   * of hashing the chunk. Asked in order; every chunk before `first` is dropped, and no chunk
   * the reader reaches first is started here any more.
   */
  take(first: number, count: number): Promise<HeadStartChunk> | undefined {
    if (!this.taken) trace(`head start: ${this.finished} chunks hashed, ${this.running} in the pool`)
    this.taken = true
    this.limit = Math.min(this.limit, Math.max(this.next, first))
    for (const k of this.hashed.keys()) if (k < first) this.hashed.delete(k)
    const p = this.hashed.get(first)
    this.hashed.delete(first)
    if (!p || count !== Math.min(this.perChunk, this.blockCount - first)) return undefined
    return p
  }

  /** Start no more chunks (the sync will not use them: a missing replica, an error); those in the pool finish. */
  async stop(): Promise<void> {
    if (this.limit > 0 && !this.taken) trace(`head start: stopped before use, ${this.finished} chunks hashed`)
    this.limit = 0
    const left = [...this.hashed.values()]
    this.hashed.clear()
    await Promise.allSettled(left)
  }
}
