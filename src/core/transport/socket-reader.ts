// Exact-length reads from a stream socket (the buffering is received-bytes.ts's): keeps the
// unconsumed tail between chunks, hands out whole fields, pauses the socket when enough is
// buffered (backpressure), and can skip bytes without allocating them.
//
// On a net.Socket the reader can take over the socket's handle (SocketReader.adopt) and have
// the kernel read straight into recycled slabs: no fresh 64 KiB buffer per read (which, as
// external memory, drove V8 into a mark-compact every few MiB: a third of the tracker's CPU
// at 64 KiB writes), and most write payloads are views of a slab, written from where they
// were received. Under the carrier's ownership rule (protocol/lent-buffers.ts) a view taken
// with lend() pins its slab, which is not read into again before every such view is released.
//
// Used by the tracker (NBD connections, its control socket) and by vdrep serve (one of the
// two ByteSources behind protocol/frame-reader.ts); the end-of-stream error keeps its first
// user's code, NBD_EOF (EOF_CODE).

import net from 'node:net'
import type {Duplex} from 'node:stream'
import {PeerGoneError} from '../errors.js'
import {EOF_CODE} from './byte-source.js'
import {ReceivedBytes, type Reusable} from './received-bytes.js'

export {EOF_CODE}

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

interface Slab extends Reusable {
  buf: Buffer
}

/** The internals of Node's net.Socket the adoption relies on (checked before use). */
interface SocketInternals {
  _handle?: {useUserBuffer?: unknown; readStart?: unknown; reading?: boolean} | null
  _server?: unknown
}

export class SocketReader extends ReceivedBytes {
  // adopted mode
  private slab: Slab | null = null
  private slabPos = 0
  private readonly freeSlabs: Slab[] = []

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
    super(HIGH_WATER)
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

  private listen(socket: Duplex): void {
    socket.on('end', () => this.fail(new PeerGoneError(EOF_CODE, 'the client closed the connection')))
    socket.on('close', () => this.fail(new PeerGoneError(EOF_CODE, 'the connection was closed')))
    socket.on('error', (err) => this.fail(new PeerGoneError('NBD_SOCKET', `socket error: ${err.message}`, {cause: err})))
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
      if (slab.refs === 0) this.freed(slab)
      slab = this.freeSlabs.pop() ?? {buf: Buffer.allocUnsafeSlow(SLAB_SIZE), refs: 0, retired: false}
      slab.retired = false
      this.slab = slab
      this.slabPos = 0
    }
    return slab.buf.subarray(this.slabPos)
  }

  protected freed(s: Reusable): void {
    if (this.freeSlabs.length < FREE_SLABS) this.freeSlabs.push(s as Slab)
  }

  protected pauseInput(): void {
    this.socket?.pause()
  }

  protected resumeInput(): void {
    this.socket?.resume()
  }
}
