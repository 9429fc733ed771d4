// The replica on the receiver's side: opened without following a symlink, created sparse
// and 0600, and paired with its state file, which says "incomplete" from before the first
// write until a proof passes.
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import {constants} from 'node:fs'
import {DiskIoError, ReplicaForeignError, UsageError} from '../errors.js'
import {psfPathFor} from '../psf/psf-file.js'
import {startWriteback} from '../native/performance-hints.js'
import {zeroRange} from '../native/holes.js'
import {writevAll} from '../util/writev-all.js'
import {HelloFlag, type Hello} from '../protocol/messages.js'
import {enforceFence, replicaFence} from './replica-fence.js'
import {checkDeviceHolds, openReplicaDevice, replicaExtent, type ReplicaExtent} from './replica-device.js'
import {readReplicaState, writeReplicaState, type ReplicaState} from './replica-state.js'
import {dropAllPoints} from '../points/store.js'

const PUNCH_MIN = 1 << 20
const SHORT_ZEROS = Buffer.alloc(PUNCH_MIN)

export interface PriorReplica {
  existed: boolean
  /** The file's size, or a block device's (replica-device.ts). */
  size: number
  /** A block device: its size is fixed, it is never truncated. */
  device: boolean
  state?: ReplicaState
  /** Durable blocks of an interrupted full sync of this same disk, else 0. */
  resumeBlock: number
}

/** Writeback is started once this much has been written since the last start. */
const WRITEBACK_MIN_BYTES = 8 << 20

export class ReplicaFile {
  private state: ReplicaState

  private constructor(
    readonly path: string,
    private readonly fh: fs.FileHandle,
    readonly prior: PriorReplica,
    private readonly hello: Hello,
  ) {
    const s = prior.state
    this.state = {
      replicaId: hello.replicaId.toString('hex'),
      complete: false,
      resumeBlock: prior.resumeBlock,
      diskSize: hello.diskSize,
      blockSize: hello.blockSize,
      hashAlgo: hello.hashAlgo,
      generation: s?.generation ?? 0,
      lastSeq: s?.lastSeq ?? 0,
      digest: '',
      size: prior.size,
      mtimeNs: '0',
      ctimeNs: '0',
      updatedMs: Date.now(),
      ...(s?.commit ? {commit: s.commit} : {}),
      ...(s?.prevCommit ? {prevCommit: s.prevCommit} : {}),
      // The user's restore-point policy outlives a full sync; the chain of points does not.
      ...(s?.retention ? {retention: s.retention} : {}),
    }
  }

  /** Refuse a replica of another source, or one that moved on without vdrep, unless the hello says otherwise. */
  async checkFence(log: (text: string) => void): Promise<void> {
    // A file with no replica state but a change record of its own is a source disk (an old
    // primary under a reprotect's `vdrep serve --root`): never a seed to overwrite by mistake.
    if (
      this.prior.existed &&
      !this.prior.state &&
      !(this.hello.flags & HelloFlag.TAKE_OVER_REPLICA) &&
      (await fs.lstat(psfPathFor(this.path)).catch(() => null))
    )
      throw new ReplicaForeignError(`${this.path} is a source disk (it has its own change record, ${psfPathFor(this.path)}); nothing was written`, {
        hint: 'give this disk another target; if that disk is no source any more, remove its .psf (or hand it over with `--take-over-replica`)',
      })
    enforceFence(this.hello, replicaFence(this.hello, this.prior.state, this.fh, await this.fh.stat({bigint: true})), log)
  }

  static async open(path: string, hello: Hello): Promise<ReplicaFile> {
    let existed = true
    let isDevice = false
    try {
      isDevice = (await fs.lstat(path)).isBlockDevice()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      existed = false
    }
    let fh: fs.FileHandle
    try {
      fh = isDevice ? await openReplicaDevice(path) : await fs.open(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600)
    } catch (err) {
      if (err instanceof UsageError) throw err
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ELOOP') throw new UsageError('PATH_OUTSIDE_ROOT', `refusing replica path ${path}: it is a symlink`)
      throw new DiskIoError(`cannot open the replica ${path}: ${(err as Error).message}`, {cause: err})
    }
    let extent: ReplicaExtent
    try {
      extent = await replicaExtent(fh)
    } catch (err) {
      await fh.close()
      throw err
    }
    const {size, device} = extent
    const {state} = existed ? await readReplicaState(path) : {state: undefined}
    const sameDisk =
      state &&
      !state.complete &&
      state.replicaId === hello.replicaId.toString('hex') &&
      state.diskSize === hello.diskSize &&
      state.blockSize === hello.blockSize &&
      state.hashAlgo === hello.hashAlgo
    const resumeBlock = sameDisk ? Math.min(state.resumeBlock, Math.ceil(hello.diskSize / hello.blockSize)) : 0
    return new ReplicaFile(path, fh, {existed, size, device, state, resumeBlock}, hello)
  }

  /**
   * Refuse a replica larger than the source unless told; mark incomplete; size the file
   * (sparse). A block device is never sized: one too small is refused before anything is
   * written, a larger one keeps its bytes past the disk's end.
   */
  async beginFullsync(diskSize: number, truncate: boolean): Promise<void> {
    if (this.prior.device) {
      checkDeviceHolds(this.path, this.prior, diskSize)
      await this.writeState({complete: false})
      return
    }
    if (this.prior.size > diskSize && !truncate) {
      throw new UsageError('REPLICA_LARGER', `the replica ${this.path} (${this.prior.size} bytes) is larger than the source (${diskSize} bytes)`, {
        hint: 'pass --truncate-replica to cut the replica down to the source size',
      })
    }
    // A full sync writes in place, without pre-images: the restore points of the old chain
    // could no longer be laid over the replica. The state forgets the chain (durably) before the
    // first write, so no record of it is ever read again; the files go after.
    await this.writeState({complete: false, pointsChain: undefined})
    await dropAllPoints(this.path)
    if (this.prior.size !== diskSize) await this.fh.truncate(diskSize)
  }

  /** Read `len` bytes at `pos` into `buf` (zeros past the end of the file). */
  async readAt(buf: Buffer, len: number, pos: number): Promise<Buffer> {
    let done = 0
    while (done < len) {
      const {bytesRead} = await this.fh.read(buf, done, len - done, pos + done)
      if (bytesRead === 0) {
        buf.fill(0, done, len)
        break
      }
      done += bytesRead
    }
    return buf.subarray(0, len)
  }

  async writeAt(data: Buffer, pos: number): Promise<void> {
    let done = 0
    while (done < data.length) {
      const {bytesWritten} = await this.fh.write(data, done, data.length - done, pos + done)
      done += bytesWritten
    }
  }

  /** Write consecutive buffers starting at `pos` with as few writev calls as the kernel allows. */
  async writeRun(buffers: Buffer[], pos: number): Promise<void> {
    await writevAll(this.fh, buffers, pos)
    let len = 0
    for (const b of buffers) len += b.length
    this.startWriteback(pos, len)
  }

  /** Written, not yet handed to writeback: `bytes` within [from, to), from < 0 for nothing. */
  private writeback = {from: -1, to: 0, bytes: 0, running: undefined as Promise<void> | undefined, off: false}

  /**
   * Have the device start on what was written (native startWriteback), one range at a time,
   * so the checkpoint's fdatasync waits for the tail instead of everything since the last one:
   * Linux would start background writeback only past 10% of RAM dirty. Started per 8 MiB
   * written, not per 8 MiB of span, so a seed's few scattered blocks cost no calls. A hint:
   * durability still comes from sync().
   */
  private startWriteback(pos: number, len: number): void {
    const wb = this.writeback
    if (wb.off) return
    if (wb.from < 0) {
      wb.from = pos
      wb.to = pos + len
    } else {
      wb.from = Math.min(wb.from, pos)
      wb.to = Math.max(wb.to, pos + len)
    }
    wb.bytes += len
    if (wb.running || wb.bytes < WRITEBACK_MIN_BYTES) return
    const p = startWriteback(this.fh.fd, wb.from, wb.to - wb.from)
    wb.from = -1
    wb.bytes = 0
    if (!p) {
      wb.off = true
      return
    }
    wb.running = p
      .catch(() => {
        wb.off = true // not supported here (a pipe, an old kernel): leave it to fdatasync
      })
      .finally(() => {
        wb.running = undefined
      })
  }

  /**
   * Make a range read as zeros. Long runs become punched holes (the replica stays sparse);
   * short ones are written as zeros, off the thread: a punch is a synchronous system call that
   * can wait for writeback, and a sync full of one-block zero runs stalled on it.
   */
  async zeroRange(pos: number, len: number): Promise<void> {
    if (len >= PUNCH_MIN) await zeroRange(this.fh.fd, pos, len)
    else await this.writeAt(SHORT_ZEROS.subarray(0, len), pos)
  }

  /** Reads may go straight to the fd (the thread-pool read-and-hash). */
  readonly directReads = true

  get fd(): number {
    return this.fh.fd
  }

  async sync(): Promise<void> {
    await this.fh.datasync()
  }

  async recordProgress(resumeBlock: number): Promise<void> {
    await this.writeState({resumeBlock})
  }

  async markComplete(patch: Partial<ReplicaState>): Promise<void> {
    await this.fh.sync()
    const st = await this.fh.stat({bigint: true})
    const now = Date.now()
    await this.writeState({
      ...patch,
      complete: true,
      resumeBlock: 0,
      generation: this.state.generation + 1,
      commitMs: now,
      // Its contents are this sync's, under the sequence it kept (a group point naming it is older).
      fullSync: {seq: this.state.lastSeq, ms: now},
      doubt: undefined,
      diverged: undefined,
      // This proved sync's commit id: the client records the same one in its .psf. No
      // predecessor is kept: a full sync leaves the push sequence as it was, so a record of
      // the commit before it (a .psf restored from a copy) would pass the sequence check too
      // and push an empty delta. A client that lost this sync's answer runs one more full sync.
      commit: this.hello.nextCommit.toString('hex'),
      prevCommit: undefined,
      // The new restore-point chain (beginFullsync dropped the old one), named here so that a
      // push's capture never has to write the state before its bundle is known to be sound.
      pointsChain: crypto.randomBytes(16).toString('hex'),
      size: Number(st.size),
      mtimeNs: st.mtimeNs.toString(),
      ctimeNs: st.ctimeNs.toString(),
    })
  }

  /** A failed proof: stay incomplete and start the next run from the beginning. */
  async markProofFailed(): Promise<void> {
    await this.writeState({complete: false, resumeBlock: 0})
  }

  get current(): Readonly<ReplicaState> {
    return this.state
  }

  private async writeState(patch: Partial<ReplicaState>): Promise<void> {
    this.state = {...this.state, ...patch, updatedMs: Date.now()}
    await writeReplicaState(this.path, this.state)
  }

  async close(): Promise<void> {
    // A writeback still running holds the fd number: close only after it.
    this.writeback.off = true
    await this.writeback.running
    await this.fh.close()
  }
}
