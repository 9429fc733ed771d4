// Exact-length reads from a stream socket: keeps the unconsumed tail between chunks,
// hands out whole fields, pauses the socket when enough is buffered (backpressure), and
// can skip bytes without allocating them.

import type {Duplex} from 'node:stream'
import {ProtocolError} from '../../errors.js'

/** Buffered bytes above which the socket is paused until a read needs more. */
const HIGH_WATER = 1024 * 1024

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

  /** Exactly `n` bytes; rejects with ProtocolError NBD_EOF if the stream ends first. */
  async read(n: number): Promise<Buffer> {
    await this.need(n)
    return this.take(n)
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

  private take(n: number): Buffer {
    const first = this.chunks[0]
    if (n === 0) return Buffer.alloc(0)
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n)
      this.advance(n)
      return out
    }
    const out = Buffer.allocUnsafe(n)
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
