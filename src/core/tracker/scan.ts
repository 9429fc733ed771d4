// `vdrep track <disk> --scan`: for disks written by something vdrep does not front. Reads
// the disk (holes skipped), hashes every block and compares it with the block hash index of
// the last proved sync; blocks that differ are marked in the active bitmap, persisted once
// at the end. Local reads only. A scan re-establishes trust: it records the disk's stamp as
// it was when the scan began, so a later write (during or after the scan) is detected.
// On a live disk the guarantee is per block, like rsync on a file being written.
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
import {FullSyncNeededError} from '../errors.js'
import {checkOpenedDisk} from '../change-record/identity.js'
import {SourceDisk} from '../disk/source-disk.js'
import {readChunks} from '../disk/chunk-reader.js'
import {canMapHashing, digestSlots, type BlockSums} from '../disk/read-hash.js'
import {blockHasher, HASH_LENGTH} from '../hash/block-hash.js'
import {HashPool} from '../hash/hash-pool.js'
import {hashFileBlocks, type FileRange} from '../hash/range-hash.js'
import {HeaderFlag} from '../psf/header.js'
import {Bitmap} from '../psf/bitmap.js'
import {HASHES_PER_PAGE} from '../psf/layout.js'
import {settledStat, stampOf} from '../psf/disk-stamp.js'
import {bytesCovered} from '../change-record/moves.js'
import {badPageWarning, openRecord} from './record.js'

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

export interface ScanProgress {
  phase: 'scan' | 'done'
  blocksDone: number
  blocksTotal: number
  bytesDone: number
  bytesTotal: number
  blocksMarked: number
}

export interface ScanOptions {
  progress?: (p: ScanProgress) => void
  log?: (level: 'warn' | 'info', line: string) => void
  /**
   * Worker threads that read and hash chunks beside the main thread; 0: the main thread
   * only. Default: one per core but one (at most 3) for disks of 256 MiB and more, else 0.
   */
  hashWorkers?: number
  /** Tests: the main thread hashes no chunk (the workers do all), when there are workers. */
  workersOnly?: boolean
}

export interface ScanResult {
  disk: string
  blocksScanned: number
  bytesScanned: number
  /** Blocks whose contents differ from the index (marked dirty). */
  blocksMarked: number
  /** Of those, blocks that were not already dirty. */
  blocksNewlyMarked: number
  /** Blocks dirty now, in total (what the next push sends). */
  dirtyBlocks: number
  bytesPending: number
  blockSize: number
  /** The disk was checksummed through a mapping (xxh3 with the addon), not read into buffers. */
  mapped: boolean
  seconds: number
}

export async function scanDisk(diskArg: string, opts: ScanOptions = {}): Promise<ScanResult> {
  const t0 = performance.now()
  const rec = await openRecord(diskArg, 'scan')
  const {disk, record} = rec
  try {
    const h = record.header
    if (h.flags & HeaderFlag.NEEDS_FULL_SYNC || !(h.flags & HeaderFlag.INDEX_VALID)) {
      throw new FullSyncNeededError(`cannot scan ${disk}: no proved full sync has recorded the block hash index to compare with; a full sync is needed`, {
        hint: `run \`vdrep fullsync ${disk}\``,
      })
    }
    const source = await SourceDisk.open(disk)
    let pool: HashPool | undefined
    try {
      // The disk read is the one the record names (the path may have been swapped since the check).
      checkOpenedDisk(record, disk, await source.stat(), source.size, {trackerRunning: false})
      if (source.size !== h.diskSize) {
        throw new FullSyncNeededError(`cannot scan ${disk}: the disk is ${source.size} bytes but the .psf was made for ${h.diskSize}; a full sync is needed`, {
          hint: `run \`vdrep fullsync ${disk}\``,
        })
      }
      const before = await settledStat(() => stampOf(disk))
      const bs = h.blockSize
      const blockCount = record.blockCount
      const hasher = blockHasher(h.hashAlgo, h.replicaId)
      // xxh3 with the addon: chunks are checksummed through a mapping in libuv's thread pool,
      // no worker threads needed (see the top of this file for the other path).
      const mapped = canMapHashing(source, hasher)
      const workers = mapped ? 0 : (opts.hashWorkers ?? (source.size >= POOL_MIN_BYTES ? Math.min(3, os.availableParallelism() - 1) : 0))
      // Started now: the workers load while the bitmaps and the index do.
      if (workers > 0) pool = new HashPool(h.hashAlgo, h.replicaId, {workers})
      const maps = await record.bitmaps()
      for (const p of maps.activeBad) opts.log?.('warn', badPageWarning(record.path, 'active', p, blockCount))
      for (const p of maps.inflightBad) opts.log?.('warn', badPageWarning(record.path, 'in-flight', p, blockCount))
      // The blocks the scan finds changed; the record adds them (and what a dead push left in flight).
      const changed = new Bitmap(blockCount)

      const {hashes, badPages: badIndex} = await record.readIndex()
      const unknown = new Uint8Array(blockCount) // blocks whose index page is bad: dirty, not compared
      for (const p of badIndex) {
        const first = p * HASHES_PER_PAGE
        const last = Math.min(blockCount, first + HASHES_PER_PAGE) - 1
        opts.log?.('warn', `page ${p} of the block hash index in ${record.path} failed its checksum: blocks ${first}..${last} are marked changed`)
        unknown.fill(1, first, last + 1)
      }

      const p: ScanProgress = {phase: 'scan', blocksDone: 0, blocksTotal: blockCount, bytesDone: 0, bytesTotal: source.size, blocksMarked: 0}
      const mark = (b: number) => {
        p.blocksMarked++
        changed.set(b)
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
          compare(
            first,
            count,
            digestSlots(chunk.sums as BlockSums, 0, count, (i) => zeroHashOf(first + i)),
          )
        }
      }
      // Every thread claims chunk indexes from one counter until they run out.
      const chunkBlocks = Math.max(1, Math.floor(SCAN_CHUNK / bs))
      const range: FileRange = {fd: source.fd, path: disk, size: source.size, bs}
      const counter = new Int32Array(new SharedArrayBuffer(4))
      let failed = false
      const stop = () => {
        failed = true
        Atomics.store(counter, 0, STOP_CLAIMS)
      }
      const workersDone = pool ? pool.hashFileChunks(range, chunkBlocks, counter, compare) : Promise.resolve()
      workersDone.catch(stop) // awaited below; meanwhile the main thread stops claiming
      if (!mapped && !(pool && opts.workersOnly)) {
        const buf = Buffer.allocUnsafeSlow(chunkBlocks * bs)
        const out = Buffer.allocUnsafe(chunkBlocks * HASH_LENGTH)
        let sinceYield = 0
        while (!failed) {
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

      // Active pages durable first, then the in-flight set emptied, then the stamp.
      const newly = await record.scanResult(changed, before)
      const active = maps.active
      p.phase = 'done'
      opts.progress?.(p)
      return {
        disk,
        blocksScanned: blockCount,
        bytesScanned: source.size,
        blocksMarked: p.blocksMarked,
        blocksNewlyMarked: newly,
        dirtyBlocks: active.count(),
        bytesPending: bytesCovered(active, bs, source.size),
        blockSize: bs,
        mapped,
        seconds: (performance.now() - t0) / 1000,
      }
    } finally {
      // Before the disk is closed: no worker may still be reading its descriptor.
      await pool?.close()
      await source.close()
    }
  } finally {
    await record.close().catch(() => {})
    await rec.diskLock.release()
    rec.lock.release()
  }
}
