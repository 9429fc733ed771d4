// Pre-images: before a bundle's blocks overwrite the replica, the blocks they overwrite are
// read from the replica into an undo record (the "undo" of that commit). This runs in the
// journal phase, while the bundle arrives, so the apply itself costs nothing more, and the
// record is durable and in place before the first byte of the replica changes. A replay after
// a crash never captures again from a replica it may have half written (points/replay.ts).
import type fs from 'node:fs/promises'
import {isAllZero} from '../hash/zero.js'
import {holeMap} from '../disk/hole-map.js'
import {UndoWriter} from './undo-writer.js'
import type {UndoHeader} from './undo-format.js'

/** Replica bytes read per batch (one batch read while the next is gathered). */
const BATCH_BYTES = 8 << 20

type Range = [start: number, count: number]

export class PreImageCapture {
  private ranges: Range[] = []
  private rangeBlocks = 0
  private running: Promise<void> = Promise.resolve()
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
    const last = this.ranges[this.ranges.length - 1]
    if (last && last[0] + last[1] === start) last[1] += count
    else this.ranges.push([start, count])
    this.rangeBlocks += count
    if (this.rangeBlocks >= this.batchBlocks) await this.startBatch()
  }

  /** Waits only for the batch before (one read in flight while the bundle goes on arriving). */
  private async startBatch(): Promise<void> {
    await this.running
    if (this.failed) throw this.failed
    const ranges = this.ranges
    this.ranges = []
    this.rangeBlocks = 0
    this.running = this.capture(ranges).catch((err: Error) => {
      this.failed ??= err
    })
  }

  private async capture(ranges: Range[]): Promise<void> {
    for (const [start, count] of ranges) {
      // Zero runs of a bundle can be long: read them a batch at a time.
      for (let b = start; b < start + count; b += this.batchBlocks) await this.captureRange(b, Math.min(this.batchBlocks, start + count - b))
      await this.writer.maybeFlush()
    }
  }

  private async captureRange(first: number, count: number): Promise<void> {
    const bs = this.writer.header.blockSize
    const inFile = Math.max(0, Math.min(count, Math.ceil(this.replicaSize / bs) - first))
    if (inFile === 0) return this.writer.addZero(first, count)
    // Holes are never read: they are zero runs in the record too.
    const {holes, allHoles} = holeMap(this.replica.fd, this.replicaSize, bs, first, inFile)
    if (allHoles) return this.writer.addZero(first, count)
    const buf = Buffer.alloc(inFile * bs) // zeros past the end of the file; a fresh buffer: the writer keeps views of it
    for (let i = 0; i < inFile;) {
      if (holes[i]) {
        i++
        continue
      }
      let end = i + 1
      while (end < inFile && !holes[end]) end++
      await readAt(this.replica, buf.subarray(i * bs, end * bs), (first + i) * bs)
      i = end
    }
    for (let i = 0; i < inFile;) {
      const block = buf.subarray(i * bs, (i + 1) * bs)
      if (holes[i] || isAllZero(block)) {
        let end = i + 1
        while (end < inFile && (holes[end] || isAllZero(buf.subarray(end * bs, (end + 1) * bs)))) end++
        this.writer.addZero(first + i, end - i)
        i = end
      } else {
        let end = i + 1
        while (end < inFile && !holes[end] && !isAllZero(buf.subarray(end * bs, (end + 1) * bs))) end++
        this.writer.addData(first + i, buf.subarray(i * bs, end * bs))
        i = end
      }
    }
    if (inFile < count) this.writer.addZero(first + inFile, count - inFile)
  }

  /** Every pre-image captured, the record complete and synced (not yet in place). */
  async seal(): Promise<void> {
    await this.startBatch()
    await this.running
    if (this.failed) throw this.failed
    await this.writer.seal()
  }

  async publish(): Promise<void> {
    await this.writer.publish()
  }

  async abort(): Promise<void> {
    await this.running
    await this.writer.abort()
  }
}

/** Read as much of `dst` as the file has at `pos`; the rest stays zero (past its end). */
async function readAt(fh: fs.FileHandle, dst: Buffer, pos: number): Promise<void> {
  let got = 0
  while (got < dst.length) {
    const {bytesRead} = await fh.read(dst, got, dst.length - got, pos + got)
    if (bytesRead === 0) return
    got += bytesRead
  }
}
