// Exact-length reads from a stream socket: keeps the unconsumed tail between chunks,
// hands out whole fields, pauses the socket when enough is buffered (backpressure), and
// can skip bytes without allocating them. A field that lies in one received chunk is a view
// of it; one that spans chunks is copied, into a buffer the caller may lend (BufferPool).

import type {Duplex} from 'node:stream'
import {ProtocolError} from '../../errors.js'

/** Buffered bytes above which the socket is paused until a read needs more. */
const HIGH_WATER = 1024 * 1024

/** Gives a buffer of exactly `n` bytes for a field that must be copied. */
export type CopyTarget = (n: number) => Buffer

/**
 * Reusable buffers for fields that must be copied (a 64 KiB write spans two 64 KiB socket
 * reads). A fresh buffer of that size costs page faults and, being external memory, drives
 * V8 into full garbage collections: 30% of the tracker's CPU at 64 KiB writes before this.
 * `take` lends one; `give` takes back what `take` lent (anything else is ignored) once
 * nothing reads it any more.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>()
  private readonly lent = new WeakSet<Buffer>()
  private cached = 0

  constructor(
    /** Bytes kept for reuse at most. */
    private readonly maxCached: number,
    /** Larger buffers are not kept. */
    private readonly maxSize: number,
  ) {}

  readonly take = (n: number): Buffer => {
    const b = this.free.get(n)?.pop()
    if (b) {
      this.cached -= n
      this.lent.add(b)
      return b
    }
    const fresh = Buffer.allocUnsafeSlow(n)
    if (n <= this.maxSize) this.lent.add(fresh)
    return fresh
  }

  give(b: Buffer): void {
    if (!this.lent.has(b)) return
    this.lent.delete(b)
    if (this.cached + b.length > this.maxCached) return
    let list = this.free.get(b.length)
    if (!list) this.free.set(b.length, (list = []))
    list.push(b)
    this.cached += b.length
  }
}

interface Waiter {
  n: number
  resolve: () => void
  reject: (err: Error) => void
}

export class SocketReader {
  private chunks: Buffer[] = []
  private head = 0 // bytes of chunks[0] already consumed
  private buffered = 0
  private waiter: Waiter | null = null
  private failure: Error | null = null

  constructor(private readonly socket: Duplex) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('end', () => this.fail(new ProtocolError('NBD_EOF', 'the client closed the connection')))
    socket.on('close', () => this.fail(new ProtocolError('NBD_EOF', 'the connection was closed')))
    socket.on('error', (err) => this.fail(new ProtocolError('NBD_SOCKET', `socket error: ${err.message}`, {cause: err})))
  }

  /** Bytes received and not yet consumed. */
  get available(): number {
    return this.buffered
  }

  /**
   * Exactly `n` bytes; rejects with ProtocolError NBD_EOF if the stream ends first. A copy
   * (the field spans chunks) goes into `target(n)` when given.
   */
  async read(n: number, target?: CopyTarget): Promise<Buffer> {
    await this.need(n)
    return this.take(n, target)
  }

  /** Exactly `n` bytes if they are buffered already (no promise), else undefined. */
  readNow(n: number, target?: CopyTarget): Buffer | undefined {
    return this.buffered >= n ? this.take(n, target) : undefined
  }

  /** Consume and drop `n` bytes without holding them all in memory. */
  async skip(n: number): Promise<void> {
    let left = n
    while (left > 0) {
      const step = Math.min(left, HIGH_WATER)
      await this.need(step)
      this.drop(step)
      left -= step
    }
  }

  /** Fail any pending and future read with `err` (used on shutdown and fatal errors). */
  cancel(err: Error): void {
    this.fail(err, true)
  }

  private need(n: number): Promise<void> {
    if (this.buffered >= n) return Promise.resolve()
    if (this.failure) return Promise.reject(this.failure)
    if (this.waiter) return Promise.reject(new Error('socket-reader: concurrent reads'))
    return new Promise<void>((resolve, reject) => {
      this.waiter = {n, resolve, reject}
      this.socket.resume()
    })
  }

  private onData(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.buffered += chunk.length
    const w = this.waiter
    if (w && this.buffered >= w.n) {
      this.waiter = null
      w.resolve()
    }
    if (this.buffered >= HIGH_WATER && (this.waiter === null || this.buffered >= this.waiter.n)) {
      this.socket.pause()
    }
  }

  private fail(err: Error, replace = false): void {
    if (!this.failure || replace) this.failure = err
    const w = this.waiter
    if (w) {
      this.waiter = null
      w.reject(err)
    }
  }

  private take(n: number, target?: CopyTarget): Buffer {
    const first = this.chunks[0]
    if (n === 0) return Buffer.alloc(0)
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n)
      this.advance(n)
      return out
    }
    const out = target ? target(n) : Buffer.allocUnsafe(n)
    let filled = 0
    while (filled < n) {
      const c = this.chunks[0]
      const step = Math.min(n - filled, c.length - this.head)
      c.copy(out, filled, this.head, this.head + step)
      filled += step
      this.advance(step)
    }
    return out
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
      this.head = 0
    }
    if (this.buffered < HIGH_WATER && this.waiter === null && this.failure === null) {
      // Keep reading ahead a little so the next header is usually already here.
      this.socket.resume()
    }
  }
}
