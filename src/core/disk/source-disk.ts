// The disk being replicated: a raw image file or a block device, read with positional
// reads. Opening checks what users get wrong: a missing path, a directory, a container
// format (qcow2, VMDK descriptor) given where a raw disk is meant.
import fs from 'node:fs/promises'
import {DiskIoError, UsageError} from '../errors.js'
import {detectForeignFormat} from './image-format.js'
import {blockDeviceSize} from '../native/block-device.js'

/** A test seam: return an error to make the read of [pos, pos+len) fail as the device would. */
export type ReadFault = (pos: number, len: number) => NodeJS.ErrnoException | undefined

const PROBE = 4096

export class SourceDisk {
  private constructor(
    readonly path: string,
    private readonly fh: fs.FileHandle,
    readonly size: number,
    readonly isBlockDevice: boolean,
    private readonly fault?: ReadFault,
  ) {}

  static async open(path: string, fault?: ReadFault): Promise<SourceDisk> {
    let st
    try {
      st = await fs.stat(path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError('DISK_MISSING', `no such disk: ${path}`)
      throw new UsageError('DISK_UNREADABLE', `cannot read ${path}: ${(err as Error).message}`)
    }
    if (st.isDirectory()) throw new UsageError('DISK_IS_DIRECTORY', `${path} is a directory, not a disk image`)
    if (!st.isFile() && !st.isBlockDevice()) throw new UsageError('DISK_NOT_A_DISK', `${path} is neither a regular file nor a block device`)
    let fh: fs.FileHandle
    try {
      fh = await fs.open(path, 'r')
    } catch (err) {
      throw new UsageError('DISK_UNREADABLE', `cannot open ${path}: ${(err as Error).message}`)
    }
    try {
      const size = st.isBlockDevice() ? blockDeviceSize(fh.fd) : st.size
      if (size === 0) throw new UsageError('DISK_EMPTY', `${path} is empty`)
      const head = Buffer.alloc(512)
      await fh.read(head, 0, head.length, 0)
      const foreign = detectForeignFormat(head)
      if (foreign) throw new UsageError('DISK_NOT_RAW', `${path} is a ${foreign.name} image, not a raw disk`, {hint: foreign.hint})
      return new SourceDisk(path, fh, size, st.isBlockDevice(), fault)
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  /** Reads may go straight to the fd (the thread-pool read-and-hash), except under a test's read fault. */
  get directReads(): boolean {
    return this.fault === undefined
  }

  /** Read exactly `len` bytes at `pos` into `buf`; a failure names the first offset that cannot be read. */
  async readAt(buf: Buffer, len: number, pos: number): Promise<Buffer> {
    try {
      await this.readExactly(buf, 0, len, pos)
    } catch (err) {
      if (len <= PROBE || err instanceof DiskIoError) throw this.readError(err, pos)
      // A large read failed: find the first 4 KiB that cannot be read, so the message names it.
      for (let off = 0; off < len; off += PROBE) {
        try {
          await this.readExactly(buf, off, Math.min(PROBE, len - off), pos + off)
        } catch (inner) {
          throw this.readError(inner, pos + off)
        }
      }
      throw this.readError(err, pos)
    }
    return buf.subarray(0, len)
  }

  private readError(err: unknown, at: number): DiskIoError {
    if (err instanceof DiskIoError) return err
    return new DiskIoError(`read error on ${this.path} at offset ${at}: ${(err as Error).message}`, {
      cause: err,
      hint: 'the source disk cannot be read there; nothing was reported as synced',
    })
  }

  private async readExactly(buf: Buffer, bufOff: number, len: number, pos: number): Promise<void> {
    let done = 0
    while (done < len) {
      const injected = this.fault?.(pos + done, len - done)
      if (injected) throw injected
      const n = (await this.fh.read(buf, bufOff + done, len - done, pos + done)).bytesRead
      if (n === 0)
        throw new DiskIoError(`${this.path} ended at offset ${pos + done}, before the ${this.size} bytes it had when the sync began`, {
          hint: 'the disk shrank during the sync',
        })
      done += n
    }
  }

  get fd(): number {
    return this.fh.fd
  }

  /** The size now (it was `size` at open): a file's from fstat, a block device's from the kernel. */
  async currentSize(): Promise<number> {
    return this.isBlockDevice ? blockDeviceSize(this.fh.fd) : Number((await this.fh.stat()).size)
  }

  /**
   * Fail if the disk is now smaller than it was at open. A sync reads the end of a file that
   * shrank under it as holes (SEEK_DATA/SEEK_HOLE answer ENXIO past the end) and would send
   * zeros for them, so this is asked before a result is claimed.
   */
  async checkNotShrunk(): Promise<void> {
    const now = await this.currentSize()
    if (now < this.size) {
      throw new DiskIoError(`${this.path} shrank during the sync (${this.size} -> ${now} bytes); what was read of its end is not the disk`, {
        hint: 'the disk shrank during the sync; the replica stays marked incomplete',
      })
    }
  }

  async stat(): Promise<import('node:fs').BigIntStats> {
    return this.fh.stat({bigint: true})
  }

  async close(): Promise<void> {
    await this.fh.close()
  }
}
