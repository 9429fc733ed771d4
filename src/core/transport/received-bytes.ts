// The buffering both byte sources share (byte-source.ts): received chunks kept until read,
// exact-length fields handed out (a view when the field lies in one chunk, else a copy),
// reads that wait for enough bytes, input paused above a high-water mark (backpressure).
// How chunks arrive is the subclass's: SocketReader (socket 'data' events, or slabs the
// kernel reads into) and StreamSource (any Readable).
//
// Lending (lend()/release(), the rule of protocol/lent-buffers.ts): a view of a chunk whose
// memory is reused (a slab) pins that memory until release(); a field that spans chunks is
// copied into a pooled buffer, which goes back to the pool at release().
import {objectArray} from '../util/object-array.js'
import {EOF_CODE, lendPool, type ByteSource} from './byte-source.js'

/** Memory that chunks are views of and that is read into again once nothing holds it (a slab). */
export interface Reusable {
  /** Unconsumed chunks and lent views in it. */
  refs: number
  /** No longer read into: free once refs is 0. */
  retired: boolean
}

interface Waiter {
  n: number
  resolve: () => void
  reject: (err: Error) => void
}

export abstract class ReceivedBytes implements ByteSource {
  // Of the object kind from the start (util/object-array.ts): onData is compiled for it.
  private chunks = objectArray<Buffer>()
  /** The reusable memory of each chunk, where it has some; parallel to chunks. */
  private owners = objectArray<Reusable | undefined>()
  private head = 0 // bytes of chunks[0] already consumed
  private buffered = 0
  private receivedBytes = 0
  private waiter: Waiter | null = null
  private failure: Error | null = null
  private paused = false
  private readonly pinned = new Map<Buffer, Reusable>()
  private readonly pool = lendPool()

  protected constructor(
    /** Buffered bytes above which the input is paused until a read needs more. */
    private readonly highWater: number,
    /** Buffered bytes below which reads resume the input by themselves (read ahead). */
    private readonly lowWater = highWater,
  ) {}

  abstract readonly reusesMemory: boolean
  protected abstract pauseInput(): void
  protected abstract resumeInput(): void
  /** `s` is held by nothing any more and no longer read into. */
  protected abstract freed(s: Reusable): void

  get available(): number {
    return this.buffered
  }

  get received(): number {
    return this.receivedBytes
  }

  get inputPaused(): boolean {
    return this.paused && this.failure === null
  }

  /** Exactly `n` bytes; rejects with a ProtocolError coded EOF_CODE if the input ends first. */
  async read(n: number): Promise<Buffer> {
    await this.need(n)
    return this.take(n, false)
  }

  /** Exactly `n` bytes if they are buffered already (no promise), else undefined. */
  readNow(n: number): Buffer | undefined {
    return this.buffered >= n ? this.take(n, false) : undefined
  }

  async lend(n: number): Promise<Buffer> {
    if (n > this.highWater && this.buffered < n) return this.lendGathered(n)
    await this.need(n)
    return this.take(n, true)
  }

  /**
   * A lend larger than the high-water mark that is not all here yet: copied into its pooled
   * buffer as it arrives, a high-water mark at a time, so the received memory (a slab per MiB
   * on an adopted socket) goes back to be read into again instead of all of it being held until
   * the last byte (a tracker's 32 MiB NBD write held 32 slabs, garbage after; issue 21).
   */
  private async lendGathered(n: number): Promise<Buffer> {
    const out = this.pool.take(n)
    let filled = 0
    while (filled < n) {
      await this.need(Math.min(n - filled, this.highWater))
      filled += this.copyOut(out, filled, Math.min(n - filled, this.buffered))
    }
    return out
  }

  lendNow(n: number): Buffer | undefined {
    return this.buffered >= n ? this.take(n, true) : undefined
  }

  /** Give back what lend() lent. True if `b` pinned reusable memory; anything not lent is ignored. */
  release(b: Buffer): boolean {
    const s = this.pinned.get(b)
    if (!s) {
      this.pool.give(b)
      return false
    }
    this.pinned.delete(b)
    this.unref(s)
    return true
  }

  /**
   * A copy of the first `n` bytes, left unconsumed for the reads that follow; fewer when the
   * input ends first. For a server that looks at a connection's first message before it
   * decides who handles it.
   */
  async peek(n: number): Promise<Buffer> {
    try {
      await this.need(n)
    } catch (err) {
      // Ended: what arrived is all there is. A failure (reset, cancel) is the caller's error.
      if ((err as {code?: string}).code !== EOF_CODE) throw err
    }
    const out = Buffer.allocUnsafe(Math.min(n, this.buffered))
    let filled = 0
    for (let i = 0; filled < out.length; i++) {
      const c = i === 0 ? this.chunks[0].subarray(this.head) : this.chunks[i]
      filled += c.copy(out, filled, 0, Math.min(c.length, out.length - filled))
    }
    return out
  }

  /** Consume and drop `n` bytes without holding them all in memory. */
  async skip(n: number): Promise<void> {
    let left = n
    while (left > 0) {
      const step = Math.min(left, this.highWater)
      await this.need(step)
      this.drop(step)
      left -= step
    }
  }

  /** Fail any pending and future read with `err` (used on shutdown and fatal errors). */
  cancel(err: Error): void {
    this.fail(err, true)
  }

  /** A chunk arrived; `owner` is the reusable memory it is a view of (one reference taken for it). */
  protected onData(chunk: Buffer, owner?: Reusable): void {
    if (chunk.length === 0) {
      if (owner) this.unref(owner)
      return
    }
    const last = this.chunks.length - 1
    const prev = last >= 0 ? this.chunks[last] : undefined
    if (owner && prev && this.owners[last] === owner && prev.buffer === chunk.buffer && prev.byteOffset + prev.length === chunk.byteOffset) {
      // The next read into the same slab, right after the last: one chunk, so a field that
      // spans the two reads is a view, not a pooled copy (a DATA body over SSH every other
      // read). The chunk holds its one reference to the slab already.
      this.chunks[last] = Buffer.from(prev.buffer, prev.byteOffset, prev.length + chunk.length)
      this.unref(owner)
    } else {
      this.chunks.push(chunk)
      this.owners.push(owner)
    }
    this.buffered += chunk.length
    this.receivedBytes += chunk.length
    const w = this.waiter
    if (w && this.buffered >= w.n) {
      this.waiter = null
      w.resolve()
    }
    if (this.buffered >= this.highWater && (this.waiter === null || this.buffered >= this.waiter.n)) this.pause()
  }

  /** The input failed or ended. The first failure stays unless `replace`. */
  protected fail(err: Error, replace = false): void {
    if (!this.failure || replace) this.failure = err
    const w = this.waiter
    if (w) {
      this.waiter = null
      w.reject(this.failure)
    }
  }

  /** The failure reads get, if any. */
  protected get failed(): Error | null {
    return this.failure
  }

  /** The input starts out paused (a server socket accepted with pauseOnConnect): the first read resumes it. */
  protected startPaused(): void {
    this.paused = true
  }

  protected unref(s: Reusable): void {
    if (--s.refs === 0 && s.retired) this.freed(s)
  }

  private need(n: number): Promise<void> {
    if (this.buffered >= n) return Promise.resolve()
    if (this.failure) return Promise.reject(this.failure)
    if (this.waiter) return Promise.reject(new Error('received bytes: concurrent reads'))
    return new Promise<void>((resolve, reject) => {
      this.waiter = {n, resolve, reject}
      this.resume()
    })
  }

  private pause(): void {
    if (this.paused) return
    this.paused = true
    this.pauseInput()
  }

  private resume(): void {
    if (!this.paused) return
    this.paused = false
    this.resumeInput()
  }

  private take(n: number, lend: boolean): Buffer {
    if (n === 0) return Buffer.alloc(0)
    const first = this.chunks[0]
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n)
      const owner = this.owners[0]
      if (lend && owner) {
        // The caller keeps it past this turn: the memory stays until release().
        owner.refs++
        this.pinned.set(out, owner)
      }
      this.advance(n)
      return out
    }
    const out = lend ? this.pool.take(n) : Buffer.allocUnsafe(n)
    this.copyOut(out, 0, n)
    return out
  }

  /** Consume `n` buffered bytes into `out` at `at`; returns `n`. */
  private copyOut(out: Buffer, at: number, n: number): number {
    let filled = 0
    while (filled < n) {
      const c = this.chunks[0]
      const step = Math.min(n - filled, c.length - this.head)
      c.copy(out, at + filled, this.head, this.head + step)
      filled += step
      this.advance(step)
    }
    return n
  }

  private drop(n: number): void {
    let left = n
    while (left > 0) {
      const step = Math.min(left, this.chunks[0].length - this.head)
      this.advance(step)
      left -= step
    }
  }

  /** Consume `n` bytes that lie within chunks[0]. */
  private advance(n: number): void {
    this.head += n
    this.buffered -= n
    if (this.head === this.chunks[0].length) {
      this.chunks.shift()
      const owner = this.owners.shift()
      if (owner) this.unref(owner)
      this.head = 0
    }
    if (this.buffered < this.lowWater && this.waiter === null && this.failure === null) {
      // Keep reading ahead a little so the next header is usually already here.
      this.resume()
    }
  }
}
