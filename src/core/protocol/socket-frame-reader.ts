// Frames from a server socket whose reads land in recycled memory (SocketReader.adopt): the
// receiver's side of a sync over SSH. A stream socket hands every read to JavaScript in a
// fresh 64 KiB buffer, and the frame reader copied each DATA body that straddled two reads
// into a fresh arena: on a 1 GiB sync that was over a second of the receiver's CPU in garbage
// collection and nearly as much in page faults and copies. Here the kernel reads into 1 MiB
// slabs; a body that lies in one slab is lent as a view of it (Frame.release gives it back),
// one that straddles two is copied into a pooled buffer, and everything else is copied out
// (small), so nothing but a lent body keeps a slab.
import type net from 'node:net'
import {ProtocolError, TransportError} from '../errors.js'
import {EOF_CODE, SocketReader} from '../transport/socket-reader.js'
import {BufferPool} from '../util/buffer-pool.js'
import {decodeFrameHeader, FRAME_HEADER_SIZE} from './frame.js'
import {BODY_AFTER, type Frame, type FrameSource} from './frame-reader.js'

/** Straddling bodies are copied into buffers from this pool (up to this many bytes kept). */
const POOL_BYTES = 16 << 20
const POOL_MAX_BUFFER = 4 << 20

export class SocketFrameReader implements FrameSource {
  private readonly pool = new BufferPool(POOL_BYTES, POOL_MAX_BUFFER)

  private constructor(
    private readonly reader: SocketReader,
    private readonly idleTimeoutMs: number,
  ) {}

  /**
   * Take over `socket` (accepted paused, nothing read yet). Returns the socket to write to
   * from now on and the reader, or null where Node's internals do not allow it (the caller
   * then reads `socket` as a stream, as before).
   */
  static adopt(socket: net.Socket, idleTimeoutMs = 0): {socket: net.Socket; reader: SocketFrameReader} | null {
    const adopted = SocketReader.adopt(socket)
    if (!adopted) return null
    return {socket: adopted.socket, reader: new SocketFrameReader(adopted.reader, idleTimeoutMs)}
  }

  /** A copy of the first `n` bytes (fewer if the peer stopped first), not consumed. */
  peek(n: number): Promise<Buffer> {
    return this.withIdleTimeout(this.reader.peek(n))
  }

  abort(err: Error): void {
    this.reader.cancel(err)
  }

  async next(): Promise<Frame | null> {
    // A clean end between frames is null; an end inside one is FRAME_TRUNCATED (read below).
    if (this.reader.available === 0 && (await this.peek(1)).length === 0) return null
    const header = decodeFrameHeader(this.reader.readNow(FRAME_HEADER_SIZE) ?? (await this.read(FRAME_HEADER_SIZE, 'a frame header')))
    const fields = BODY_AFTER[header.type]
    if (fields !== undefined && header.length > fields) {
      const payload = Buffer.from(this.reader.readNow(fields) ?? (await this.read(fields, 'a frame')))
      const n = header.length - fields
      const body = this.reader.readNow(n, this.pool.take) ?? (await this.read(n, 'a frame', this.pool.take))
      return {type: header.type, payload, body, release: () => void (this.reader.release(body) || this.pool.give(body))}
    }
    // Copied: a payload can outlive the next read (a hash kept in a journal entry).
    if (header.length === 0) return {type: header.type, payload: Buffer.alloc(0)}
    return {type: header.type, payload: Buffer.from(this.reader.readNow(header.length) ?? (await this.read(header.length, 'a frame')))}
  }

  /**
   * Waits for `n` bytes under the idle timeout. Fields already buffered are taken with
   * readNow() instead, without a promise or a timer. Arming and clearing a timer for each of a
   * DATA frame's three fields cost `vdrep serve` about 0.2 CPU-s of ~1.2 per 512 MiB received
   * over SSH (medians of 6, A/B).
   */
  private async read(n: number, what: string, target?: (n: number) => Buffer): Promise<Buffer> {
    try {
      return await this.withIdleTimeout(this.reader.read(n, target))
    } catch (err) {
      if ((err as {code?: string}).code === EOF_CODE) {
        throw new ProtocolError('FRAME_TRUNCATED', `stream ended inside ${what}: ${this.reader.available} of ${n} bytes`)
      }
      throw err
    }
  }

  /** Fails `p` with IDLE_TIMEOUT if the peer sends nothing for idleTimeoutMs (a slow trickle is not cut). */
  private async withIdleTimeout<T>(p: Promise<T>): Promise<T> {
    if (this.idleTimeoutMs <= 0) return p
    let seen = this.reader.received
    const check = (): void => {
      if (this.reader.received !== seen) {
        seen = this.reader.received
        timer = setTimeout(check, this.idleTimeoutMs)
        return
      }
      this.reader.cancel(new TransportError('IDLE_TIMEOUT', `the peer sent nothing for ${Math.round(this.idleTimeoutMs / 1000)} s`))
    }
    let timer = setTimeout(check, this.idleTimeoutMs)
    try {
      return await p
    } finally {
      clearTimeout(timer)
    }
  }
}
