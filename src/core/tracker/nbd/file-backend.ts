// An NbdBackend over a plain file or a block device: positional reads and writes through
// a FileHandle, holes through the native helpers (punch / SEEK_DATA / SEEK_HOLE, with their
// pure-JS fallbacks: zeros written, everything reported as data).
//
// Writes are gathered: the writes asked for in one turn of the event loop (a client at queue
// depth 16 sends its requests together) are issued once the turn's callbacks have run, and
// runs of them that touch each other go to the file as one pwritev, so sequential small
// writes cost one syscall and one thread-pool round trip per run, not per request. Each
// write still resolves only once its own bytes are written (the whole run is), and two
// writes of one batch never overlap (the server orders overlapping requests).

import type {BigIntStats} from 'node:fs'
import fs, {constants as FS} from 'node:fs'
import {open, stat, type FileHandle} from 'node:fs/promises'
import path from 'node:path'
import {DiskIoError, UsageError} from '../../errors.js'
import {blockDeviceSize} from '../../native/block-device.js'
import {openDeviceExclusive} from '../../disk/device-claim.js'
import {seekData, seekHole, zeroRange} from '../../native/holes.js'
import {objectArray} from '../../util/object-array.js'
import type {NbdBackend, NbdExtent, NbdWriteZeroesOptions} from './backend.js'

export interface FileBackendOptions {
  /** Open read-only (the server must then be read-only too). */
  readOnly?: boolean
  /** Name clients ask for; default the file's base name. */
  exportName?: string
}

/** Zeros are written in chunks of this size where a hole must not be made. */
const ZERO_CHUNK = 1024 * 1024
/** Extents reported for one block-status request at most. */
const MAX_EXTENTS = 1024
/** One gathered run is cut at this many bytes or buffers (IOV_MAX is 1024). */
const MAX_RUN_BYTES = 8 * 1024 * 1024
const MAX_RUN_BUFFERS = 256
/** Runs at most this long are written on the loop's own thread (see writeRun; VDREP_ASYNC_WRITES=1: never). */
const SYNC_WRITE_MAX = 128 * 1024

interface QueuedWrite {
  offset: number
  data: Buffer
  done: (err: Error | null) => void
}

let zeroChunk: Buffer | undefined

export class FileBackend implements NbdBackend {
  /** Writes asked for in this turn of the event loop, issued together at its end. */
  private queued: QueuedWrite[] = objectArray<QueuedWrite>()
  private issueArmed = false
  /** Gathered runs being written; close() waits for them. */
  private running = 0
  private idle: (() => void) | null = null
  /**
   * Every run through the thread pool, small ones too (VDREP_ASYNC_WRITES=1, read once here:
   * a read of process.env costs ~0.4 us, too much per request; tests set this directly).
   */
  asyncWrites = process.env.VDREP_ASYNC_WRITES === '1'

  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly size: number,
    readonly exportName: string,
  ) {}

  /** The descriptor the export writes through (the inode this tracker is bound to). */
  get fd(): number {
    return this.fh.fd
  }

  static async open(file: string, opts: FileBackendOptions = {}): Promise<FileBackend> {
    let fh: FileHandle
    try {
      // A block device served for writing is claimed (O_EXCL): refused while mounted, and no
      // mount can take it while the export runs, so every write goes through the recording path.
      const device = !opts.readOnly && (await stat(file).catch(() => undefined))?.isBlockDevice()
      fh = device ? await openDeviceExclusive(file, 'disk') : await open(file, opts.readOnly ? FS.O_RDONLY : FS.O_RDWR)
    } catch (err) {
      if (err instanceof UsageError) throw err
      const code = (err as NodeJS.ErrnoException).code
      const why = code === 'ENOENT' ? 'it does not exist' : (err as Error).message
      throw new UsageError('DISK_OPEN', `cannot open disk ${file}: ${why}`, {cause: err})
    }
    try {
      const st = await fh.stat()
      if (!st.isFile() && !st.isBlockDevice()) throw new UsageError('DISK_TYPE', `${file} is not a regular file or a block device`)
      const size = st.isBlockDevice() ? blockDeviceSize(fh.fd) : st.size
      return new FileBackend(fh, file, size, opts.exportName ?? path.basename(file))
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length)
    let done = 0
    while (done < length) {
      const {bytesRead} = await this.io('read', offset + done, () => this.fh.read(buf, done, length - done, offset + done))
      if (bytesRead === 0) {
        throw new DiskIoError(`short read of ${this.path} at offset ${offset + done}: the disk is smaller than ${this.size} bytes now`)
      }
      done += bytesRead
    }
    return buf
  }

  write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    const written = new Promise<void>((resolve, reject) => {
      this.queued.push({offset, data, done: (err) => (err ? reject(err) : resolve())})
      if (!this.issueArmed) {
        this.issueArmed = true
        process.nextTick(this.issueQueued)
      }
    })
    return fua ? written.then(() => this.flush()) : written
  }

  /** Issue the writes gathered in this turn: each run of touching writes as one pwritev. */
  private readonly issueQueued = (): void => {
    this.issueArmed = false
    const q = this.queued
    this.queued = objectArray<QueuedWrite>()
    // One write alone (a VM at queue depth 1): written at once, without a run's bookkeeping.
    if (q.length === 1 && q[0].data.length <= SYNC_WRITE_MAX && !this.asyncWrites) return this.writeOneSync(q[0])
    let start = 0
    while (start < q.length) {
      let end = start + 1
      let bytes = q[start].data.length
      while (
        end < q.length &&
        q[end].offset === q[end - 1].offset + q[end - 1].data.length &&
        end - start < MAX_RUN_BUFFERS &&
        bytes + q[end].data.length <= MAX_RUN_BYTES
      ) {
        bytes += q[end].data.length
        end++
      }
      this.writeRun(q.slice(start, end), bytes)
      start = end
    }
  }

  /** Write one run of touching writes (short writes continue); settle each of them after. */
  private writeRun(run: QueuedWrite[], total: number): void {
    this.running++
    const offset = run[0].offset
    const finish = (err: Error | null): void => {
      if (--this.running === 0 && this.idle) {
        const idle = this.idle
        this.idle = null
        idle()
      }
      for (const w of run) w.done(err)
    }
    const step = (done: number): void => {
      if (done >= total) return finish(null)
      const pos = offset + done
      const cb = (err: NodeJS.ErrnoException | null, n: number): void => {
        if (err) finish(new DiskIoError(`write on ${this.path} at offset ${pos} failed: ${err.message}`, {cause: err}))
        else if (n === 0) finish(new DiskIoError(`write to ${this.path} at offset ${pos} made no progress`))
        else step(done + n)
      }
      const bufs = remainder(run, done)
      if (total <= SYNC_WRITE_MAX && !this.asyncWrites) {
        // A small write into the page cache takes a few microseconds: a round trip through the
        // thread pool (a handoff, a wake-up of the loop) cost more than the write itself.
        let n: number
        try {
          n = bufs.length === 1 ? fs.writeSync(this.fh.fd, bufs[0], 0, bufs[0].length, pos) : fs.writevSync(this.fh.fd, bufs, pos)
        } catch (err) {
          return cb(err as NodeJS.ErrnoException, 0)
        }
        return cb(null, n)
      }
      if (bufs.length === 1) fs.write(this.fh.fd, bufs[0], 0, bufs[0].length, pos, cb)
      else fs.writev(this.fh.fd, bufs, pos, cb)
    }
    step(0)
  }

  /** writeRun's synchronous path for a run of one write. */
  private writeOneSync(w: QueuedWrite): void {
    const len = w.data.length
    let done = 0
    while (done < len) {
      const pos = w.offset + done
      let n: number
      try {
        n = fs.writeSync(this.fh.fd, w.data, done, len - done, pos)
      } catch (err) {
        return w.done(new DiskIoError(`write on ${this.path} at offset ${pos} failed: ${(err as Error).message}`, {cause: err}))
      }
      if (n === 0) return w.done(new DiskIoError(`write to ${this.path} at offset ${pos} made no progress`))
      done += n
    }
    w.done(null)
  }

  async writeZeroes(offset: number, length: number, opts: NbdWriteZeroesOptions): Promise<void> {
    if (opts.noHole) await this.writeZeroChunks(offset, length)
    else await this.io('zero', offset, () => zeroRange(this.fh.fd, offset, length))
    if (opts.fua) await this.flush()
  }

  /** Punches a hole where the filesystem can (the range then reads as zeros), else writes zeros. */
  async trim(offset: number, length: number, fua: boolean): Promise<void> {
    await this.io('trim', offset, () => zeroRange(this.fh.fd, offset, length))
    if (fua) await this.flush()
  }

  async flush(): Promise<void> {
    await this.io('flush', 0, () => this.fh.datasync())
  }

  async blockStatus(offset: number, length: number): Promise<NbdExtent[]> {
    const end = offset + length
    const out: NbdExtent[] = []
    const fd = this.fh.fd
    let pos = offset
    while (pos < end && out.length < MAX_EXTENTS) {
      const data = await this.io('seek', pos, async () => seekData(fd, pos))
      if (data < 0 || data >= end) {
        out.push({length: end - pos, hole: true, zero: true})
        break
      }
      if (data > pos) {
        out.push({length: data - pos, hole: true, zero: true})
        pos = data
      }
      let hole = await this.io('seek', pos, async () => seekHole(fd, pos))
      if (hole <= pos || hole > end) hole = end // -1 (raced with a truncate) or past the range
      out.push({length: hole - pos, hole: false, zero: false})
      pos = hole
    }
    return out
  }

  /** fstat of the open disk: the inode (or device) this backend writes, whatever the path names now. */
  stat(): Promise<BigIntStats> {
    return this.fh.stat({bigint: true})
  }

  async close(): Promise<void> {
    if (this.issueArmed) this.issueQueued()
    while (this.running > 0) await new Promise<void>((resolve) => (this.idle = resolve))
    await this.fh.close()
  }

  private async writeZeroChunks(offset: number, length: number): Promise<void> {
    zeroChunk ??= Buffer.alloc(ZERO_CHUNK)
    for (let pos = offset; pos < offset + length; pos += ZERO_CHUNK) {
      const n = Math.min(ZERO_CHUNK, offset + length - pos)
      await this.write(pos, n === ZERO_CHUNK ? zeroChunk : zeroChunk.subarray(0, n), false)
    }
  }

  /** Run one I/O call; failures become DiskIoError naming the operation, path and offset. */
  private async io<T>(op: string, offset: number, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      if (err instanceof DiskIoError) throw err
      throw new DiskIoError(`${op} on ${this.path} at offset ${offset} failed: ${(err as Error).message}`, {cause: err})
    }
  }
}

/** The buffers of a run past its first `skip` bytes (after a short write). */
/**
 * The payloads of `run` past its first `skip` bytes. Always an array of the object kind
 * (util/object-array.ts): `run.map` made arrays of a kind of its own, and the compiled write
 * path was thrown away at fs.writevSync's first look at one ("wrong map").
 */
function remainder(run: QueuedWrite[], skip: number): Buffer[] {
  const out = objectArray<Buffer>()
  let left = skip
  for (const w of run) {
    if (left > 0 && left >= w.data.length) {
      left -= w.data.length
      continue
    }
    out.push(left > 0 ? w.data.subarray(left) : w.data)
    left = 0
  }
  return out
}
