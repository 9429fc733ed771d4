// Pre-images: before a bundle's blocks overwrite the replica, the blocks they overwrite are
// read from the replica into an undo record (the "undo" of that commit). This runs in the
// journal phase, while the bundle arrives, so the apply itself costs nothing more, and the
// record is durable and in place before the first byte of the replica changes. A replay after
// a crash never captures again from a replica it may have half written (points/replay.ts).
//
// Speed: a push's blocks are scattered, one or a few per range, so reading them one pread at a
// time (a thread-pool round trip each) left the capture far behind a bundle arriving at memory
// speed, and the commit waited for it after the journal was sealed. So a worker takes whatever
// ranges have arrived (up to a batch) as soon as it is free, hands the thread pool up to 32 of
// the batch's reads at a time, then hands the blocks to the writer in order.
import type fs from 'node:fs/promises'
import {isAllZero} from '../hash/zero.js'
import {holeMap} from '../disk/hole-map.js'
import {UndoWriter} from './undo-writer.js'
import type {UndoHeader} from './undo-format.js'
import {BufferPool, SharedLease} from '../util/buffer-pool.js'

/** Replica bytes read per batch (one batch in flight while the next ranges queue). */
const BATCH_BYTES = 8 << 20
/**
 * Reads of a batch handed to the thread pool at once. More than its 4 threads: a read queued in
 * libuv starts the moment a thread is free, where one dispatched from here waits for a turn of
 * the event loop, and a cold replica gives the device a queue to work on. Measured at 4 GiB
 * (653 scattered blocks, warm cache): the capture's tail after the bundle took ~150 ms one at a
 * time, ~95 ms 4 at a time, ~40-55 ms 64 at a time. Bounded, so the journal's own writes queue
 * behind at most this many 64 KiB reads (about a millisecond).
 */
const READS_IN_FLIGHT = 32
/**
 * Queued ranges past which add() waits. A queued range is two numbers, not data (the bundle's
 * bytes go to the journal either way), so the bundle never waits for the capture below this: an
 * earlier bound of 4 batches of blocks stalled the receive, and the journal's writes with it,
 * until the capture had caught up entirely (1.9x at 4 GiB). This only bounds a hostile bundle.
 */
const MAX_QUEUED_RANGES = 1 << 16

/**
 * Read buffers reused across batches and commits: a fresh 64 KiB buffer per block faulted its
 * pages in on every commit (on this VM a fault costs more than the copy). A buffer goes back
 * once the writer has written it.
 */
const pool = new BufferPool(4 * BATCH_BYTES, BATCH_BYTES)

type Range = [start: number, count: number]

/** One range of a batch: its blocks read from the replica (zeros past its end), and which are holes. */
interface Piece {
  first: number
  count: number
  inFile: number
  holes?: Uint8Array
  lease?: SharedLease
}

export class PreImageCapture {
  private queue: Range[] = []
  private worker: Promise<void> | undefined
  private failed: Error | undefined
  private readonly batchBlocks: number

  private constructor(
    private readonly replica: fs.FileHandle,
    /** The replica's size now (point `from`): blocks past it read as zeros. */
    private readonly replicaSize: number,
    readonly writer: UndoWriter,
  ) {
    this.batchBlocks = Math.max(1, Math.floor(BATCH_BYTES / writer.header.blockSize))
  }

  static async begin(dir: string, replica: fs.FileHandle, header: UndoHeader): Promise<PreImageCapture> {
    const size = (await replica.stat()).size
    return new PreImageCapture(replica, size, await UndoWriter.create(dir, header))
  }

  /** Blocks [start, start+count) are about to be overwritten (bundle order: ascending, no overlap). */
  async add(start: number, count: number): Promise<void> {
    if (this.failed) throw this.failed
    const last = this.queue[this.queue.length - 1]
    if (last && last[0] + last[1] === start) last[1] += count
    else this.queue.push([start, count])
    this.kick()
    if (this.queue.length >= MAX_QUEUED_RANGES) await this.backlog()
    if (this.failed) throw this.failed
  }

  private async backlog(): Promise<void> {
    while (this.worker && this.queue.length >= MAX_QUEUED_RANGES) await this.worker
  }

  /**
   * Starts the worker unless one runs. It clears itself in a callback, which always runs after
   * the assignment here (a worker that found nothing to do must not stay behind as a settled
   * promise that drain() would await forever), and starts the next for what came meanwhile.
   */
  private kick(): void {
    if (this.worker) return
    const w: Promise<void> = this.work().finally(() => {
      if (this.worker !== w) return
      this.worker = undefined
      // Ranges added after the worker's last look at the queue (add() saw it still running).
      if (this.queue.length > 0 && !this.failed) this.kick()
    })
    this.worker = w
  }

  /** Runs while ranges are queued (no await between the last check and its end). */
  private async work(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.failed) {
        await this.captureBatch(this.takeBatch())
        await this.writer.maybeFlush()
      }
    } catch (err) {
      this.failed ??= err as Error
    }
  }

  /** Up to a batch of queued blocks (a long range is cut; zero runs of a bundle can be long). */
  private takeBatch(): Range[] {
    const out: Range[] = []
    let blocks = 0
    while (this.queue.length > 0 && blocks < this.batchBlocks) {
      const r = this.queue[0]
      const take = Math.min(r[1], this.batchBlocks - blocks)
      out.push([r[0], take])
      if (take === r[1]) this.queue.shift()
      else this.queue[0] = [r[0] + take, r[1] - take]
      blocks += take
    }
    return out
  }

  private async captureBatch(ranges: Range[]): Promise<void> {
    const reads: Array<() => Promise<void>> = []
    const pieces = ranges.map(([first, count]) => this.startPiece(first, count, reads))
    await runAll(reads, READS_IN_FLIGHT)
    for (const p of pieces) this.emit(p)
  }

  /** Finds the range's holes and starts reading its data runs (pushed on `reads`). */
  private startPiece(first: number, count: number, reads: Array<() => Promise<void>>): Piece {
    const bs = this.writer.header.blockSize
    const inFile = Math.max(0, Math.min(count, Math.ceil(this.replicaSize / bs) - first))
    if (inFile === 0) return {first, count, inFile}
    // Holes are never read: they are zero runs in the record too.
    const {holes, allHoles} = holeMap(this.replica.fd, this.replicaSize, bs, first, inFile)
    if (allHoles) return {first, count, inFile: 0}
    // The writer keeps views of it until they are written: a lease, dropped by the last of them.
    const lease = new SharedLease(pool, pool.take(inFile * bs))
    const buf = lease.buf
    for (let i = 0; i < inFile;) {
      if (holes[i]) {
        i++
        continue
      }
      let end = i + 1
      while (end < inFile && !holes[end]) end++
      const [dst, pos] = [buf.subarray(i * bs, end * bs), (first + i) * bs]
      reads.push(() => readAt(this.replica, dst, pos))
      i = end
    }
    return {first, count, inFile, holes, lease}
  }

  /** The piece's blocks to the writer, in order: zero runs (holes, all-zero blocks) and data. */
  private emit({first, count, inFile, holes, lease}: Piece): void {
    const bs = this.writer.header.blockSize
    if (!holes || !lease) return this.writer.addZero(first, count)
    const buf = lease.buf
    const zero = (i: number) => holes[i] === 1 || isAllZero(buf.subarray(i * bs, (i + 1) * bs))
    for (let i = 0; i < inFile;) {
      const isZero = zero(i)
      let end = i + 1
      while (end < inFile && zero(end) === isZero) end++
      if (isZero) this.writer.addZero(first + i, end - i)
      else this.writer.addData(first + i, buf.subarray(i * bs, end * bs), lease.retain())
      i = end
    }
    lease.drop()
    if (inFile < count) this.writer.addZero(first + inFile, count - inFile)
  }

  private async drain(): Promise<void> {
    while (this.worker) await this.worker
  }

  /** Every pre-image captured, the record complete and synced (not yet in place). */
  async seal(): Promise<void> {
    if (!this.failed) this.kick()
    await this.drain()
    if (this.failed) throw this.failed
    await this.writer.seal()
  }

  async publish(): Promise<void> {
    await this.writer.publish()
  }

  async abort(): Promise<void> {
    this.failed ??= new Error('capture aborted')
    await this.drain()
    await this.writer.abort()
  }
}

/** Runs the jobs, `limit` at a time (each takes a thread of the pool the journal's writes need too). */
async function runAll(jobs: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0
  const runner = async () => {
    while (next < jobs.length) await jobs[next++]()
  }
  await Promise.all(Array.from({length: Math.min(limit, jobs.length)}, runner))
}

/** Read as much of `dst` as the file has at `pos`; the rest is zeroed (past its end: a reused buffer). */
async function readAt(fh: fs.FileHandle, dst: Buffer, pos: number): Promise<void> {
  let got = 0
  while (got < dst.length) {
    const {bytesRead} = await fh.read(dst, got, dst.length - got, pos + got)
    if (bytesRead === 0) {
      dst.fill(0, got)
      return
    }
    got += bytesRead
  }
}
