// The copy-on-write side file of one freeze: before the VM overwrites a block that a push
// is shipping, its old contents are appended here, so the push reads the disk as it was at
// the freeze. Capped; nothing here needs to survive a crash (a push whose tracker died
// aborts and its blocks are merged back), so there is no fsync.
import fs from 'node:fs/promises'
import {DiskIoError} from '../errors.js'

export class CowStore {
  private fh: fs.FileHandle | null = null
  private opening: Promise<fs.FileHandle> | null = null
  private readonly where = new Map<number, {offset: number; length: number}>()
  private end = 0
  private discarded = false

  constructor(
    readonly path: string,
    /** Bytes the side file may hold. */
    readonly limit: number,
  ) {}

  get bytes(): number {
    return this.end
  }

  get blocks(): number {
    return this.where.size
  }

  has(block: number): boolean {
    return this.where.has(block)
  }

  /** Would `bytes` more still fit under the cap? */
  fits(bytes: number): boolean {
    return this.end + bytes <= this.limit
  }

  /**
   * Keep the old contents of blocks first.. (consecutive, `blockSize` each, the last may be
   * short): `data` holds them back to back. The caller checked `fits` and holds the range.
   */
  async preserveRun(first: number, blockSize: number, data: Buffer): Promise<void> {
    const fh = await this.open()
    const at = this.end
    this.end += data.length
    let done = 0
    while (done < data.length) {
      const {bytesWritten} = await fh.write(data, done, data.length - done, at + done)
      if (bytesWritten === 0) throw new DiskIoError(`write to ${this.path} at offset ${at + done} made no progress`)
      done += bytesWritten
    }
    for (let i = 0, off = 0; off < data.length; i++, off += blockSize) {
      this.where.set(first + i, {offset: at + off, length: Math.min(blockSize, data.length - off)})
    }
  }

  /** The preserved contents of a block, or undefined when it was never overwritten. */
  async read(block: number): Promise<Buffer | undefined> {
    const w = this.where.get(block)
    if (!w || !this.fh) return undefined
    const buf = Buffer.allocUnsafe(w.length)
    let done = 0
    while (done < w.length) {
      const {bytesRead} = await this.fh.read(buf, done, w.length - done, w.offset + done)
      if (bytesRead === 0) throw new DiskIoError(`${this.path} is shorter than expected (block ${block} at offset ${w.offset})`)
      done += bytesRead
    }
    return buf
  }

  /** Close and delete the side file. */
  async discard(): Promise<void> {
    this.discarded = true
    this.where.clear()
    const fh = this.fh ?? (await this.opening?.catch(() => null))
    this.fh = null
    if (fh) await fh.close().catch(() => {})
    await fs.rm(this.path, {force: true})
  }

  private open(): Promise<fs.FileHandle> {
    if (this.discarded) return Promise.reject(new DiskIoError(`the copy-on-write side file ${this.path} was already discarded`))
    this.opening ??= fs.open(this.path, 'w+', 0o600).then(
      (fh) => (this.fh = fh),
      (err: Error) => {
        this.opening = null
        throw new DiskIoError(`cannot create the copy-on-write side file ${this.path}: ${err.message}`, {cause: err})
      },
    )
    return this.opening
  }
}
