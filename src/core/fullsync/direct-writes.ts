// The receiver's writes to the replica with direct I/O: one ordered writer per replica. A DATA
// block whose memory a direct write can take as it is (page-aligned: the local client's chunks,
// any other that happens to be) joins a run of views written with one pwritev, and its
// receive memory goes back once that write is done. Any other is copied once, into the open run
// of an aligned staging buffer (its receive memory goes back at once), written with one pwrite
// when full or when the next block is not its neighbour. At most STAGES - 1 runs of each kind
// are on their way to the device; the receive loop waits beyond that. Long zero runs are
// punched; short ones are zeros in the run. The disk's odd tail (a size that is no multiple of
// DIRECT_ALIGN) goes through the page cache, as does everything after a file system that
// opened with O_DIRECT refuses a write (EINVAL): said once in the log.
import type fs from 'node:fs/promises'
import type {ReadableDisk} from '../disk/read-hash.js'
import {alignedBuffer, DIRECT_ALIGN, directWritable, openDirect} from '../native/direct-io.js'
import type {ReplicaFile} from '../receiver/replica-file.js'
import {ReplicaWrites, type BlockWrites} from './receiver-writes.js'
import {StagingBuffers} from './staging-buffers.js'

/** Bytes per direct write at most (a run of contiguous blocks). */
const STAGE_BYTES = 4 << 20
/** Staging buffers: one filling, the others written. 16 MiB, whatever the disk's size. */
const STAGES = 4
/** Zero runs at least this long are punched (holes); shorter ones are written as zeros. */
const PUNCH_MIN = 1 << 20

const VIEW_WRITES_IN_FLIGHT = STAGES - 1 // runs of views written at once (the reader's memory until written)

/** Contiguous blocks written from their own (aligned) memory, without a copy. */
interface ViewRun {
  start: number
  bytes: number
  views: Buffer[]
  releases: Array<() => void>
}

interface Stage {
  buf: Buffer
  /** Replica offset of buf[0]. */
  start: number
  fill: number
}

/**
 * The replica's writer for a full sync: direct when the replica's file system and the addon
 * allow, else the page-cache writer (receiver-writes.ts); `log` is told why not.
 */
export async function openReplicaWrites(replica: ReplicaFile, blockSize: number, log: (text: string) => void): Promise<BlockWrites> {
  const why = (reason: string) => {
    log(`writing through the page cache: ${reason}`)
    return new ReplicaWrites(replica, blockSize)
  }
  if (blockSize % DIRECT_ALIGN !== 0) return why(`block size ${blockSize} is no multiple of ${DIRECT_ALIGN}`)
  const opened = await openDirect(replica.fd)
  if ('reason' in opened) return why(opened.reason)
  return new DirectWrites(replica, opened.fh, blockSize, log)
}

export class DirectWrites implements BlockWrites {
  private readonly stageBytes: number
  private readonly stages: StagingBuffers
  private current: Stage | undefined
  private viewRun: ViewRun | undefined
  private viewWrites = 0
  private readonly viewWaiting: Array<() => void> = []
  private readonly inFlight = new Set<Promise<void>>()
  private writeError: Error | undefined
  /** False once the file system refused a direct write: the rest goes through the page cache. */
  private direct = true

  constructor(
    private readonly replica: ReplicaFile,
    private readonly fh: fs.FileHandle,
    private readonly blockSize: number,
    private readonly log: (text: string) => void,
  ) {
    this.stageBytes = Math.max(STAGE_BYTES, blockSize)
    this.stages = new StagingBuffers(STAGES, this.stageBytes)
  }

  /**
   * The replica as the proof reads it back: from the device through the O_DIRECT fd into aligned
   * memory. A mapping (or buffered read) would fault each written run in with the device's
   * read-ahead around it (8 MiB here): mostly holes not yet written, zero-filled in the page
   * cache and dropped again by the next direct write (35% of serve's CPU, measured).
   * An odd tail, or any read the O_DIRECT fd refuses, is read again through readAt.
   */
  get readBack(): ReadableDisk | undefined {
    if (!this.direct) return undefined
    const {replica, fh} = this
    return {
      fd: fh.fd,
      directReads: true,
      mappable: false,
      readAt: (buf, len, pos) => replica.readAt(buf, len, pos),
      readBuffer: (size) => alignedBuffer(size) ?? Buffer.allocUnsafeSlow(size),
    }
  }

  get mode(): string {
    return this.direct ? 'direct I/O' : 'page cache'
  }

  /**
   * Block `block`'s bytes: written from their own memory when a direct write can take it (the
   * receive memory is the reader's again once written), else copied into the open run (the
   * reader's again once copied). A promise only when it has to wait (for room, or for a staging
   * buffer): most blocks are queued without one (a promise and its turn of the microtask queue
   * per 64 KiB block were a visible part of serve's CPU).
   */
  writeBlock(block: number, data: Buffer, release?: () => void): Promise<void> | undefined {
    if (this.direct && directWritable(data)) return this.putView(block * this.blockSize, data, release)
    this.submitViews()
    let waiting: Promise<void> | undefined
    try {
      waiting = this.put(block * this.blockSize, data.length, data)
    } finally {
      if (!waiting) release?.() // copied (or failed): the reader's again
    }
    return waiting?.finally(() => release?.())
  }

  async zeroRange(offset: number, length: number): Promise<void> {
    this.submitViews()
    if (length < PUNCH_MIN) return await this.put(offset, length)
    this.submitCurrent()
    this.throwIfFailed()
    await this.replica.zeroRange(offset, length)
  }

  /** Every write queued so far is on the device's side of fdatasync; fails with the first write error. */
  async settle(): Promise<void> {
    this.submitViews()
    this.submitCurrent()
    await Promise.allSettled([...this.inFlight])
    this.throwIfFailed()
  }

  barrier(): Promise<void> {
    this.submitViews()
    this.submitCurrent()
    const queued = [...this.inFlight]
    return Promise.allSettled(queued).then(() => this.throwIfFailed())
  }

  async close(): Promise<void> {
    this.current = undefined
    const unwritten = this.viewRun
    this.viewRun = undefined
    if (unwritten) releaseAll(unwritten.releases)
    await Promise.allSettled([...this.inFlight])
    await this.fh.close()
  }

  private throwIfFailed(): void {
    if (this.writeError) throw this.writeError
  }

  /** Append `data` (or `length` zeros) at `pos` to the open run (a new one if not contiguous or full); a promise only when it waits for a buffer. */
  private put(pos: number, length: number, data?: Buffer): Promise<void> | undefined {
    this.throwIfFailed()
    let s = this.current
    if (s && (s.start + s.fill !== pos || s.fill + length > s.buf.length)) {
      this.submitCurrent()
      s = undefined
    }
    if (!s) {
      const buf = this.stages.takeNow()
      if (!buf) return this.stages.take().then((b) => this.fillStage({buf: b, start: pos, fill: 0}, length, data))
      s = {buf, start: pos, fill: 0}
    }
    this.fillStage(s, length, data)
    return undefined
  }

  private fillStage(s: Stage, length: number, data?: Buffer): void {
    this.current = s
    if (data) data.copy(s.buf, s.fill)
    else s.buf.fill(0, s.fill, s.fill + length)
    s.fill += length
    if (s.fill === s.buf.length) this.submitCurrent()
  }

  /** Append a view to the open run of views (a new one if not contiguous or full); a promise only when a new run waits for room. */
  private putView(pos: number, data: Buffer, release?: () => void): Promise<void> | undefined {
    this.throwIfFailed()
    this.submitCurrent()
    const r = this.viewRun
    if (r && (r.start + r.bytes !== pos || r.bytes + data.length > this.stageBytes)) this.submitViews()
    if (this.viewRun) return this.addView(this.viewRun, data, release)
    // Room first: the views are the reader's memory, held until written.
    if (this.viewWrites >= VIEW_WRITES_IN_FLIGHT) return this.putViewWhenRoom(pos, data, release)
    return this.addView((this.viewRun = {start: pos, bytes: 0, views: [], releases: []}), data, release)
  }

  private async putViewWhenRoom(pos: number, data: Buffer, release?: () => void): Promise<void> {
    while (this.viewWrites >= VIEW_WRITES_IN_FLIGHT) await new Promise<void>((resolve) => this.viewWaiting.push(resolve))
    this.throwIfFailed()
    this.addView((this.viewRun = {start: pos, bytes: 0, views: [], releases: []}), data, release)
  }

  private addView(r: ViewRun, data: Buffer, release?: () => void): undefined {
    r.views.push(data)
    if (release) r.releases.push(release)
    r.bytes += data.length
    if (r.bytes >= this.stageBytes) this.submitViews()
    return undefined
  }

  private submitViews(): void {
    const r = this.viewRun
    if (!r) return
    this.viewRun = undefined
    this.viewWrites++
    const p: Promise<void> = this.writeViews(r)
      .catch((err: Error) => {
        this.writeError ??= err
      })
      .finally(() => {
        this.inFlight.delete(p)
        this.viewWrites--
        releaseAll(r.releases)
        this.viewWaiting.shift()?.()
      })
    this.inFlight.add(p)
  }

  /** One pwritev of the run; what a short write leaves, or a file system that refuses it, goes through the page cache. */
  private async writeViews(r: ViewRun): Promise<void> {
    let done = 0
    if (this.direct) {
      try {
        const {bytesWritten} = await this.fh.writev(r.views, r.start)
        done = bytesWritten
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err
        if (this.direct) this.log(`writing through the page cache: the file system refused a direct write (EINVAL)`)
        this.direct = false
      }
    }
    if (done === r.bytes) return
    const rest: Buffer[] = []
    let at = 0
    for (const v of r.views) {
      if (at + v.length > done) rest.push(v.subarray(Math.max(0, done - at)))
      at += v.length
    }
    await this.replica.writeRun(rest, r.start + done)
  }

  private submitCurrent(): void {
    const s = this.current
    if (!s) return
    this.current = undefined
    const p: Promise<void> = this.writeStage(s)
      .catch((err: Error) => {
        // Kept, and thrown at the next block or settle: the session fails with it (ENOSPC, EIO).
        this.writeError ??= err
      })
      .finally(() => {
        this.inFlight.delete(p)
        this.stages.giveBack(s.buf)
      })
    this.inFlight.add(p)
  }

  private async writeStage(s: Stage): Promise<void> {
    const aligned = s.fill - (s.fill % DIRECT_ALIGN)
    if (aligned > 0) await this.writeAligned(s.buf.subarray(0, aligned), s.start)
    // Only the disk's last block can end off the alignment: its tail through the page cache.
    if (aligned < s.fill) await this.replica.writeAt(s.buf.subarray(aligned, s.fill), s.start + aligned)
  }

  private async writeAligned(buf: Buffer, pos: number): Promise<void> {
    if (this.direct) {
      try {
        let done = 0
        while (done < buf.length) {
          const {bytesWritten} = await this.fh.write(buf, done, buf.length - done, pos + done)
          // A short direct write would leave the rest unaligned: finish it through the page cache.
          if (bytesWritten === 0 || bytesWritten % DIRECT_ALIGN !== 0)
            return await this.replica.writeAt(buf.subarray(done + bytesWritten), pos + done + bytesWritten)
          done += bytesWritten
        }
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err
        // Opened with O_DIRECT, refused on write (some FUSE and network file systems).
        if (this.direct) this.log(`writing through the page cache: the file system refused a direct write (EINVAL)`)
        this.direct = false
      }
    }
    await this.replica.writeAt(buf, pos)
  }
}

function releaseAll(releases: Array<() => void>): void {
  for (const r of releases) r()
}
