// The local verification's engine: hash every block of the disk and compare it with the block
// hash index of the last proved sync (what the replica holds). A block that differs, or whose
// index page failed its checksum, is reported; nothing is written here. `track --scan`, a push
// that must first verify its record, and a tracker that verifies behind a live export all use it.
//
// With xxh3 and the addon, chunks are checksummed through a read-only mapping of the page
// cache in libuv's thread pool (native mapHashRuns, as a full sync's receiver does): no copy,
// no worker threads to start. Otherwise (blake3, sha256, VDREP_NO_MMAP=1, no addon):
// each thread that hashes reads its own chunks (1 MiB, synchronous pread into a reused
// buffer) and hashes them while they are in its core's cache: the main thread, and with more
// than one core a HashPool of workers that claim chunks from the same counter (whoever is
// free takes the next one, so a worker's start costs nothing but its own CPU). Reading on one
// thread and hashing on another (the chunk reader's one chunk ahead, or workers hashing its
// shared chunks) left the hasher waiting for reads and moved every byte between cores: on
// the 2-vCPU bench machine a 1 GiB scan took 0.42 s that way against 0.33 s now (raw hash
// 0.25-0.27 s), and hashing shared chunks on workers was slower than the main thread alone.
import os from 'node:os'
import type {SourceDisk} from '../disk/source-disk.js'
import {readChunks} from '../disk/chunk-reader.js'
import {canMapHashing, digestSlots, type BlockSums} from '../disk/read-hash.js'
import {blockHasher, HASH_LENGTH} from '../hash/block-hash.js'
import {HashPool} from '../hash/hash-pool.js'
import {hashFileBlocks, type FileRange} from '../hash/range-hash.js'
import {HASHES_PER_PAGE} from '../psf/layout.js'
import type {Bitmap} from '../psf/bitmap.js'

/** Bytes checksummed per thread-pool task on the mapped path (nothing is buffered). */
const MAPPED_SCAN_CHUNK = 32 << 20
/** Bytes read and hashed at a time by one thread (fits a core's L2 cache). */
const SCAN_CHUNK = 1 << 20
/** The main thread lets the event loop run (worker results, timers) after this much. */
const YIELD_BYTES = 4 << 20
/** Disks smaller than this are hashed on the main thread only (a worker's start costs more). */
const POOL_MIN_BYTES = 256 << 20
/** Past the last chunk index: a failed scan stops every thread's claims. */
const STOP_CLAIMS = 0x3fffffff

export interface CompareProgress {
  blocksDone: number
  blocksTotal: number
  bytesDone: number
  bytesTotal: number
  blocksMarked: number
}

export interface CompareOptions {
  progress?: (p: CompareProgress) => void
  log?: (level: 'warn' | 'info', line: string) => void
  /**
   * Worker threads that read and hash chunks beside the main thread; 0: the main thread
   * only. Default: one per core but one (at most 3) for disks of 256 MiB and more, else 0.
   */
  hashWorkers?: number
  /** Tests: the main thread hashes no chunk (the workers do all), when there are workers. */
  workersOnly?: boolean
  /** Asked between chunks: true ends the comparison early with an error (a tracker stopping). */
  shouldStop?: () => boolean
}

function stopped(): Error {
  return new Error('the comparison with the block hash index was stopped before its end')
}

export interface IndexToCompare {
  /** The disk, opened (its size is the record's). */
  source: SourceDisk
  path: string
  blockSize: number
  blockCount: number
  hashAlgo: number
  replicaId: Buffer
  /** The index as read from the record, and its pages that failed their checksum. */
  hashes: Buffer
  badPages: number[]
  /** Where the index came from, for the warnings. */
  psfPath: string
}

export interface Comparison {
  /** Blocks that differ from the index (or sit on a bad index page): each was passed to onChanged. */
  blocksChanged: number
  /** The disk was checksummed through a mapping (xxh3 with the addon), not read into buffers. */
  mapped: boolean
}

/** Hash every block of `ix.source`, call `onChanged(b)` for each that differs from the index. */
export async function compareWithIndex(ix: IndexToCompare, onChanged: (block: number) => void, opts: CompareOptions = {}): Promise<Comparison> {
  const {source, blockSize: bs, blockCount} = ix
  const hasher = blockHasher(ix.hashAlgo, ix.replicaId)
  // xxh3 with the addon: chunks are checksummed through a mapping in libuv's thread pool,
  // no worker threads needed (see the top of this file for the other path).
  const mapped = canMapHashing(source, hasher)
  const workers = mapped ? 0 : (opts.hashWorkers ?? (source.size >= POOL_MIN_BYTES ? Math.min(3, os.availableParallelism() - 1) : 0))
  const pool = workers > 0 ? new HashPool(ix.hashAlgo, ix.replicaId, {workers}) : undefined
  try {
    const unknown = new Uint8Array(blockCount) // blocks whose index page is bad: changed, not compared
    for (const p of ix.badPages) {
      const first = p * HASHES_PER_PAGE
      const last = Math.min(blockCount, first + HASHES_PER_PAGE) - 1
      opts.log?.('warn', `page ${p} of the block hash index in ${ix.psfPath} failed its checksum: blocks ${first}..${last} are marked changed`)
      unknown.fill(1, first, last + 1)
    }
    const hashes = ix.hashes
    const p: CompareProgress = {blocksDone: 0, blocksTotal: blockCount, bytesDone: 0, bytesTotal: source.size, blocksMarked: 0}
    const mark = (b: number) => {
      p.blocksMarked++
      onChanged(b)
    }
    /** Compare blocks [first, first+count) with the index, given their hashes. */
    const compare = (first: number, count: number, got: Buffer) => {
      for (let i = 0; i < count; i++) {
        const b = first + i
        if (unknown[b]) mark(b)
        else if (!got.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH).equals(hashes.subarray(b * HASH_LENGTH, (b + 1) * HASH_LENGTH))) mark(b)
      }
      p.blocksDone += count
      p.bytesDone += Math.min(count * bs, source.size - first * bs)
      opts.progress?.(p)
    }

    if (mapped) {
      const zeroHashOf = (b: number) => hasher.zeroHash(Math.min(bs, source.size - b * bs))
      for await (const chunk of readChunks(source, source.size, bs, MAPPED_SCAN_CHUNK, hasher, () => true)) {
        const {first, count} = chunk
        if (opts.shouldStop?.()) throw stopped()
        compare(
          first,
          count,
          digestSlots(chunk.sums as BlockSums, 0, count, (i) => zeroHashOf(first + i)),
        )
      }
      return {blocksChanged: p.blocksMarked, mapped}
    }
    // Every thread claims chunk indexes from one counter until they run out.
    const chunkBlocks = Math.max(1, Math.floor(SCAN_CHUNK / bs))
    const range: FileRange = {fd: source.fd, path: ix.path, size: source.size, bs}
    const counter = new Int32Array(new SharedArrayBuffer(4))
    let failed = false
    const stop = () => {
      failed = true
      Atomics.store(counter, 0, STOP_CLAIMS)
    }
    const workersDone = pool ? pool.hashFileChunks(range, chunkBlocks, counter, compare) : Promise.resolve()
    workersDone.catch(stop) // awaited below; meanwhile the main thread stops claiming
    if (!(pool && opts.workersOnly)) {
      const buf = Buffer.allocUnsafeSlow(chunkBlocks * bs)
      const out = Buffer.allocUnsafe(chunkBlocks * HASH_LENGTH)
      let sinceYield = 0
      while (!failed) {
        if (opts.shouldStop?.()) stop()
        const first = Atomics.add(counter, 0, 1) * chunkBlocks
        if (first >= blockCount) break
        const count = Math.min(chunkBlocks, blockCount - first)
        try {
          compare(first, count, hashFileBlocks(range, first, count, hasher, buf, out))
        } catch (err) {
          stop()
          throw err
        }
        sinceYield += count * bs
        if (sinceYield >= YIELD_BYTES) {
          sinceYield = 0
          await new Promise<void>((resolve) => setImmediate(resolve))
        }
      }
    }
    await workersDone
    if (opts.shouldStop?.()) throw stopped()
    return {blocksChanged: p.blocksMarked, mapped}
  } finally {
    // Before the caller closes the disk: no worker may still be reading its descriptor.
    await pool?.close()
  }
}

/**
 * Like compareWithIndex, for the set blocks of `blocks` only (the hot extents of an activity
 * log after a crash): runs of set blocks are read and hashed on this thread, at most
 * SCAN_CHUNK at a time, letting the event loop run between chunks.
 */
export async function compareBlocksWithIndex(
  ix: IndexToCompare,
  blocks: Bitmap,
  onChanged: (block: number) => void,
  opts: CompareOptions = {},
): Promise<Comparison> {
  const {source, blockSize: bs, blockCount} = ix
  const hasher = blockHasher(ix.hashAlgo, ix.replicaId)
  const bad = new Set(ix.badPages)
  const range: FileRange = {fd: source.fd, path: ix.path, size: source.size, bs}
  const chunkBlocks = Math.max(1, Math.floor(SCAN_CHUNK / bs))
  const buf = Buffer.allocUnsafeSlow(chunkBlocks * bs)
  const out = Buffer.allocUnsafe(chunkBlocks * HASH_LENGTH)
  const total = blocks.count()
  const p: CompareProgress = {blocksDone: 0, blocksTotal: total, bytesDone: 0, bytesTotal: total * bs, blocksMarked: 0}
  const mark = (b: number) => {
    p.blocksMarked++
    onChanged(b)
  }
  let sinceYield = 0
  for (let b = 0; b < blockCount;) {
    if (!blocks.get(b)) {
      b++
      continue
    }
    let count = 1
    while (count < chunkBlocks && b + count < blockCount && blocks.get(b + count)) count++
    if (opts.shouldStop?.()) throw stopped()
    const got = hashFileBlocks(range, b, count, hasher, buf, out)
    for (let i = 0; i < count; i++) {
      const blk = b + i
      if (bad.has(Math.floor(blk / HASHES_PER_PAGE))) mark(blk)
      else if (!got.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH).equals(ix.hashes.subarray(blk * HASH_LENGTH, (blk + 1) * HASH_LENGTH))) mark(blk)
    }
    p.blocksDone += count
    p.bytesDone += count * bs
    opts.progress?.(p)
    b += count
    sinceYield += count * bs
    if (sinceYield >= YIELD_BYTES) {
      sinceYield = 0
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }
  return {blocksChanged: p.blocksMarked, mapped: false}
}
