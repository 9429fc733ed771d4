// An NbdBackend over a plain file or a block device: positional reads and writes through
// a FileHandle, holes through the native helpers (punch / SEEK_DATA / SEEK_HOLE, with their
// pure-JS fallbacks: zeros written, everything reported as data).

import {constants as FS} from 'node:fs'
import {open, type FileHandle} from 'node:fs/promises'
import path from 'node:path'
import {DiskIoError, UsageError} from '../../errors.js'
import {blockDeviceSize, seekData, seekHole, zeroRange} from '../../disk/native.js'
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

let zeroChunk: Buffer | undefined

export class FileBackend implements NbdBackend {
  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly size: number,
    readonly exportName: string,
  ) {}

  static async open(file: string, opts: FileBackendOptions = {}): Promise<FileBackend> {
    let fh: FileHandle
    try {
      fh = await open(file, opts.readOnly ? FS.O_RDONLY : FS.O_RDWR)
    } catch (err) {
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
      const {bytesRead} = await this.io('read', offset + done, () =>
        this.fh.read(buf, done, length - done, offset + done),
      )
      if (bytesRead === 0) {
        throw new DiskIoError(`short read of ${this.path} at offset ${offset + done}: the disk is smaller than ${this.size} bytes now`)
      }
      done += bytesRead
    }
    return buf
  }

  async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    let done = 0
    while (done < data.length) {
      const {bytesWritten} = await this.io('write', offset + done, () =>
        this.fh.write(data, done, data.length - done, offset + done),
      )
      if (bytesWritten === 0) throw new DiskIoError(`write to ${this.path} at offset ${offset + done} made no progress`)
      done += bytesWritten
    }
    if (fua) await this.flush()
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

  async close(): Promise<void> {
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
