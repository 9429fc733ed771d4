// A ByteSource over any Readable: the client's end of every carrier, and the receiver's end of
// the in-process duplex pair and of the worker thread's port. Keeps the unconsumed chunks,
// hands out exact-length fields (a view when the field lies in one chunk), and pauses the
// stream when it holds more than HIGH_WATER (backpressure) until a read needs more.
//
// The chunks are the stream's, never read into again by this source, so views of them stay
// valid without pinning anything (reusesMemory is false). A stream error is passed on as it
// is (a TransportError from the SSH channel, a worker's failure); an end is EOF_CODE.
import type {Readable} from 'node:stream'
import {ProtocolError} from '../errors.js'
import {EOF_CODE, type ByteSource, type CopyTarget} from './byte-source.js'

/** Buffered bytes above which the stream is paused; it resumes below half of it. */
const HIGH_WATER = 8 << 20

interface Waiter {
  n: number
  resolve: () => void
  reject: (err: Error) => void
}

export class StreamSource implements ByteSource {
  readonly reusesMemory = false
  private chunks: Buffer[] = []
  private head = 0 // bytes of chunks[0] already consumed
  private buffered = 0
  private receivedBytes = 0
  private waiter: Waiter | null = null
  private failure: Error | null = null
  private paused = false

  constructor(
    private readonly stream: Readable,
    /** Bytes already read from the stream (a peeked first frame), read before anything else. */
    initial?: Buffer,
  ) {
    if (initial && initial.length > 0) this.onData(initial)
    // A stream that ended while its first bytes were being peeked will not say so again.
    if (stream.readableEnded || stream.destroyed) this.fail(eof())
    stream.on('data', (chunk: Buffer) => this.onData(chunk))
    stream.on('end', () => this.fail(eof()))
    stream.on('close', () => this.fail(eof()))
    stream.on('error', (err) => this.fail(err instanceof Error ? err : new Error(String(err))))
  }

  get available(): number {
    return this.buffered
  }

  get received(): number {
    return this.receivedBytes
  }

  async read(n: number, target?: CopyTarget): Promise<Buffer> {
    await this.need(n)
    return this.take(n, target)
  }

  readNow(n: number, target?: CopyTarget): Buffer | undefined {
    return this.buffered >= n ? this.take(n, target) : undefined
  }

  async peek(n: number): Promise<Buffer> {
    try {
      await this.need(n)
    } catch (err) {
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

  /** Nothing here is pinned: a view stays valid on its own, a copy is its target's. */
  release(): boolean {
    return false
  }

  cancel(err: Error): void {
    this.fail(err, true)
  }

  private need(n: number): Promise<void> {
    if (this.buffered >= n) return Promise.resolve()
    if (this.failure) return Promise.reject(this.failure)
    if (this.waiter) return Promise.reject(new Error('stream-source: concurrent reads'))
    return new Promise<void>((resolve, reject) => {
      this.waiter = {n, resolve, reject}
      // Also a stream handed over paused (a server socket accepted with pauseOnConnect).
      if (this.paused || this.stream.isPaused()) {
        this.paused = false
        this.stream.resume()
      }
    })
  }

  private onData(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.buffered += chunk.length
    this.receivedBytes += chunk.length
    const w = this.waiter
    if (w && this.buffered >= w.n) {
      this.waiter = null
      w.resolve()
    }
    if (this.buffered > HIGH_WATER && !this.paused && this.waiter === null) {
      this.paused = true
      this.stream.pause()
    }
  }

  /** The first failure stays, except that an error replaces a mere end (and cancel replaces all). */
  private fail(err: Error, replace = false): void {
    const isEnd = (err as {code?: string}).code === EOF_CODE
    if (!this.failure || replace || (!isEnd && (this.failure as {code?: string}).code === EOF_CODE)) this.failure = err
    const w = this.waiter
    if (w) {
      this.waiter = null
      w.reject(this.failure)
    }
  }

  private take(n: number, target?: CopyTarget): Buffer {
    if (n === 0) return Buffer.alloc(0)
    const first = this.chunks[0]
    let out: Buffer
    if (first.length - this.head >= n) {
      out = first.subarray(this.head, this.head + n)
      this.advance(n)
    } else {
      out = target ? target(n) : Buffer.allocUnsafe(n)
      let filled = 0
      while (filled < n) {
        const c = this.chunks[0]
        const step = Math.min(n - filled, c.length - this.head)
        c.copy(out, filled, this.head, this.head + step)
        filled += step
        this.advance(step)
      }
    }
    if (this.paused && this.buffered < HIGH_WATER / 2) {
      this.paused = false
      this.stream.resume()
    }
    return out
  }

  /** Consume `n` bytes that lie within chunks[0]. */
  private advance(n: number): void {
    this.head += n
    this.buffered -= n
    if (this.head === this.chunks[0].length) {
      this.chunks.shift()
      this.head = 0
    }
  }
}

function eof(): Error {
  return new ProtocolError(EOF_CODE, 'the connection was closed')
}
