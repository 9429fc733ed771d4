// Exact-length reads from a stream socket: keeps the unconsumed tail between chunks,
// hands out whole fields, pauses the socket when enough is buffered (backpressure), and
// can skip bytes without allocating them. A field that lies in one received chunk is a view
// of it; one that spans chunks is copied, into a buffer the caller may lend (BufferPool).
//
// On a net.Socket the reader can take over the socket's handle (SocketReader.adopt) and have
// the kernel read straight into recycled slabs: no fresh 64 KiB buffer per read (which, as
// external memory, drove V8 into a mark-compact every few MiB: a third of the tracker's CPU
// at 64 KiB writes), and most write payloads are views of a slab, written from where they
// were received. A view taken with a CopyTarget pins its slab until release().
//
// Used by the tracker (NBD connections, its control socket) and by vdrep serve (one of the
// two ByteSources behind protocol/frame-reader.ts); the end-of-stream error keeps its first
// user's code, NBD_EOF (EOF_CODE). Views lent from slabs follow the carrier's ownership rule
// (protocol/lent-buffers.ts): a slab is not read into again before every view of it is released.

import net from 'node:net'
import type {Duplex} from 'node:stream'
import {ProtocolError} from '../errors.js'
import {EOF_CODE, type ByteSource, type CopyTarget} from './byte-source.js'

export {EOF_CODE, type CopyTarget}

/** Buffered bytes above which the socket is paused until a read needs more. */
const HIGH_WATER = 1024 * 1024

/**
 * Slab of the adopted mode: received bytes land in it back to back. A pinned view holds its
 * whole slab, so a connection's in-flight writes (64 at most) hold 64 MiB of slabs at worst.
 */
const SLAB_SIZE = 1024 * 1024
/** A read is offered at least this much room; less left in the slab moves to the next one. */
const MIN_READ = 128 * 1024
/** Free slabs kept per connection. */
const FREE_SLABS = 4

interface Slab {
  buf: Buffer
  /** Unconsumed chunks and pinned views in it. */
  refs: number
  /** No longer read into: free once refs is 0. */
  retired: boolean
}

/** The internals of Node's net.Socket the adoption relies on (checked before use). */
interface SocketInternals {
  _handle?: {useUserBuffer?: unknown; readStart?: unknown; reading?: boolean} | null
  _server?: unknown
}

interface Waiter {
  n: number
  resolve: () => void
  reject: (err: Error) => void
}

export class SocketReader implements ByteSource {
  private chunks: Buffer[] = []
  /** Slab of each chunk (adopted mode), parallel to chunks. */
  private owners: Array<Slab | undefined> = []
  private head = 0 // bytes of chunks[0] already consumed
  private buffered = 0
  private receivedBytes = 0
  private waiter: Waiter | null = null
  private failure: Error | null = null
  private paused = false
  // adopted mode
  private slab: Slab | null = null
  private slabPos = 0
  private readonly freeSlabs: Slab[] = []
  private readonly pinned = new Map<Buffer, Slab>()

  /**
   * Reads `socket`'s 'data' events; or, with `adopted`, is fed by a socket that reads into
   * this reader's slabs (see adopt()) and is attached to it with attach().
   */
  constructor(socket: Duplex)
  constructor(socket: null, adopted: true)
  constructor(
    private socket: Duplex | null,
    adopted = false,
  ) {
    if (adopted) {
      this.slab = {buf: Buffer.allocUnsafeSlow(SLAB_SIZE), refs: 0, retired: false}
      return
    }
    this.listen(socket as Duplex)
    ;(socket as Duplex).on('data', (chunk: Buffer) => this.onData(chunk))
  }

  /**
   * Take over an accepted net.Socket that has not started reading (a server made with
   * pauseOnConnect): its handle moves to a new net.Socket that reads into this reader's slabs
   * (Node's `onread`, which server sockets do not offer). Returns the new socket and its
   * reader, or null (the socket left as it was) where this Node's internals do not allow it.
   */
  static adopt(old: net.Socket): {socket: net.Socket; reader: SocketReader} | null {
    const internals = old as unknown as SocketInternals
    const handle = internals._handle
    if (!handle || typeof handle.useUserBuffer !== 'function' || typeof handle.readStart !== 'function') return null
    if (handle.reading || old.readableLength > 0 || old.destroyed) return null
    const reader = new SocketReader(null, true)
    let socket: net.Socket
    try {
      socket = new net.Socket({
        handle,
        readable: true,
        writable: true,
        allowHalfOpen: old.allowHalfOpen,
        onread: {buffer: reader.nextBuffer, callback: reader.onRead},
      } as net.SocketConstructorOpts)
    } catch {
      return null
    }
    // The old object lets go of the handle, and the server counts the new one as the connection.
    const moved = socket as unknown as SocketInternals
    moved._server = internals._server
    internals._server = null
    internals._handle = null
    reader.socket = socket
    reader.listen(socket)
    return {socket, reader}
  }

  /** True when reading into slabs (adopted), false when reading 'data' events. */
  get adopted(): boolean {
    return this.slab !== null
  }

  /** Slabs are read into again; a 'data' event's buffer is the reader's alone. */
  get reusesMemory(): boolean {
    return this.adopted
  }

  /**
   * Give back a view that a read with a CopyTarget returned (its slab may then be reused).
   * False if `b` is not such a view (a copy, or the 'data' mode): the caller's to recycle.
   */
  release(b: Buffer): boolean {
    const s = this.pinned.get(b)
    if (!s) return false
    this.pinned.delete(b)
    this.unref(s)
    return true
  }

  private listen(socket: Duplex): void {
    socket.on('end', () => this.fail(new ProtocolError(EOF_CODE, 'the client closed the connection')))
    socket.on('close', () => this.fail(new ProtocolError(EOF_CODE, 'the connection was closed')))
    socket.on('error', (err) => this.fail(new ProtocolError('NBD_SOCKET', `socket error: ${err.message}`, {cause: err})))
  }

  /** Bytes received and not yet consumed. */
  get available(): number {
    return this.buffered
  }

  /** Bytes received since the start (an idle timer's way to see that the peer is still there). */
  get received(): number {
    return this.receivedBytes
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

  /**
   * A copy of the first `n` bytes, left unconsumed for the reads that follow; fewer when the
   * stream ends first. For a server that looks at a connection's first message
   * before it decides who handles it.
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
      this.resume()
    })
  }

  /** Adopted mode: the socket read `n` bytes into the buffer nextBuffer gave it. */
  private readonly onRead = (n: number, buf: Buffer): boolean => {
    const slab = this.slab as Slab
    if (buf.buffer !== slab.buf.buffer) {
      // Not the buffer nextBuffer gave (never seen): keep a copy, not a view of it.
      this.onData(Buffer.from(buf.subarray(0, n)))
      return true
    }
    slab.refs++
    this.slabPos += n
    this.onData(buf.subarray(0, n), slab)
    return true
  }

  /** Adopted mode: where the next read goes (the rest of the slab, or a fresh one). */
  private readonly nextBuffer = (): Buffer => {
    let slab = this.slab as Slab
    if (slab.buf.length - this.slabPos < MIN_READ) {
      slab.retired = true
      if (slab.refs === 0) this.recycle(slab)
      slab = this.freeSlabs.pop() ?? {buf: Buffer.allocUnsafeSlow(SLAB_SIZE), refs: 0, retired: false}
      slab.retired = false
      this.slab = slab
      this.slabPos = 0
    }
    return slab.buf.subarray(this.slabPos)
  }

  private unref(s: Slab): void {
    if (--s.refs === 0 && s.retired) this.recycle(s)
  }

  private recycle(s: Slab): void {
    if (this.freeSlabs.length < FREE_SLABS) this.freeSlabs.push(s)
  }

  private pause(): void {
    if (this.paused || !this.socket) return
    this.paused = true
    this.socket.pause()
  }

  private resume(): void {
    if (!this.paused || !this.socket) return
    this.paused = false
    this.socket.resume()
  }

  private onData(chunk: Buffer, owner?: Slab): void {
    if (chunk.length === 0) {
      if (owner) this.unref(owner)
      return
    }
    this.chunks.push(chunk)
    this.owners.push(owner)
    this.buffered += chunk.length
    this.receivedBytes += chunk.length
    const w = this.waiter
    if (w && this.buffered >= w.n) {
      this.waiter = null
      w.resolve()
    }
    if (this.buffered >= HIGH_WATER && (this.waiter === null || this.buffered >= this.waiter.n)) {
      this.pause()
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
      const owner = this.owners[0]
      if (target && owner) {
        // The caller keeps it past this turn: the slab stays until release().
        owner.refs++
        this.pinned.set(out, owner)
      }
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
      const owner = this.owners.shift()
      if (owner) this.unref(owner)
      this.head = 0
    }
    if (this.buffered < HIGH_WATER && this.waiter === null && this.failure === null) {
      // Keep reading ahead a little so the next header is usually already here.
      this.resume()
    }
  }
}
