// Splits a byte stream into whole frames. Keeps the unconsumed tail between chunks,
// validates each header before taking the payload, pauses the stream when it holds too
// much (backpressure), and slices without copying when a payload lies in one chunk.
import type {Readable} from 'node:stream'
import {ProtocolError, TransportError, VdrepError} from '../errors.js'
import {decodeFrameHeader, FRAME_HEADER_SIZE, FrameType, type FrameTypeId} from './frame.js'
import {DATA_FIELDS_SIZE} from './messages.js'

export interface Frame {
  type: FrameTypeId
  /** The payload; for a frame with a bulk body (DATA), only its fixed fields. */
  payload: Buffer
  /** A DATA frame's block bytes, taken without a copy when they arrived in one piece. */
  body?: Buffer
  /**
   * Where set, `body` is lent from the reader's receive memory: call this once nothing reads
   * the body any more (its write is done), and the memory is reused. Not calling it is safe,
   * only slower (the memory is left to the GC).
   */
  release?: () => void
}

/** What the sessions read frames from: a FrameReader, or a SocketFrameReader on a server socket. */
export interface FrameSource {
  /** The next whole frame, or null at a clean end of stream between frames. */
  next(): Promise<Frame | null>
  /**
   * Fail a read that is waiting for the peer (and every later one that would wait) with
   * `err`: the session failed on its own side (a replica read error in its scan, a failed
   * checkpoint) while the peer, waiting for that side, sends nothing. Frames already here
   * are still returned; the session checks its own errors between them.
   */
  abort?(err: Error): void
}

/** Frame types whose payload is fixed fields followed by bulk bytes, and the fields' size. */
export const BODY_AFTER: Partial<Record<number, number>> = {[FrameType.DATA]: DATA_FIELDS_SIZE}

const HIGH_WATER = 8 << 20
const ARENA_SIZE = 4 << 20

export class FrameReader implements FrameSource {
  private chunks: Buffer[] = []
  private buffered = 0
  private ended = false
  private error: Error | undefined
  private wake: (() => void) | undefined
  private paused = false
  private arena: Buffer | undefined
  private arenaUsed = 0

  constructor(
    private readonly stream: Readable,
    private readonly idleTimeoutMs = 0,
    /** Bytes already read from the stream (a peeked first frame), read before anything else. */
    initial?: Buffer,
  ) {
    if (initial && initial.length > 0) {
      this.chunks.push(initial)
      this.buffered = initial.length
    }
    // A stream that ended while its first bytes were being peeked will not say so again.
    if (stream.readableEnded || stream.destroyed) this.ended = true
    stream.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk)
      this.buffered += chunk.length
      if (this.buffered > HIGH_WATER && !this.paused) {
        this.paused = true
        stream.pause()
      }
      this.notify()
    })
    stream.on('end', () => {
      this.ended = true
      this.notify()
    })
    stream.on('close', () => {
      this.ended = true
      this.notify()
    })
    stream.on('error', (err) => {
      // Decided here, where it happened: a failing stream is the connection, not a local disk.
      this.error = err instanceof VdrepError ? err : new TransportError('STREAM_FAILED', `the connection failed: ${err instanceof Error ? err.message : String(err)}`, {cause: err})
      this.notify()
    })
  }

  abort(err: Error): void {
    this.error ??= err
    this.notify()
  }

  private notify(): void {
    const w = this.wake
    this.wake = undefined
    w?.()
  }

  private async waitFor(n: number): Promise<boolean> {
    while (this.buffered < n) {
      if (this.error) throw this.error
      if (this.ended) return false
      if (this.paused) {
        this.paused = false
        this.stream.resume()
      }
      await new Promise<void>((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined
        this.wake = () => {
          if (timer) clearTimeout(timer)
          resolve()
        }
        if (this.idleTimeoutMs > 0) {
          timer = setTimeout(() => {
            this.wake = undefined
            reject(new TransportError('IDLE_TIMEOUT', `the peer sent nothing for ${Math.round(this.idleTimeoutMs / 1000)} s`))
          }, this.idleTimeoutMs)
        }
      })
    }
    return true
  }

  /**
   * Room for a payload that arrived in pieces. Payloads are carved from a 4 MiB arena rather
   * than allocated one by one: over TCP most DATA frames straddle socket reads, and a fresh
   * 64 KiB buffer each made the receiver's garbage collector its main cost. An arena lives
   * until every payload cut from it is dropped.
   */
  private alloc(n: number): Buffer {
    // Small payloads (control frames) come from Node's pool: never a 4 MiB arena for 80 bytes.
    if (n < 4096) return Buffer.allocUnsafe(n)
    if (n > ARENA_SIZE / 4) return Buffer.allocUnsafeSlow(n)
    if (!this.arena || this.arenaUsed + n > this.arena.length) {
      this.arena = Buffer.allocUnsafeSlow(ARENA_SIZE)
      this.arenaUsed = 0
    }
    const out = this.arena.subarray(this.arenaUsed, this.arenaUsed + n)
    this.arenaUsed += (n + 7) & ~7
    return out
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]
    let out: Buffer
    if (first.length >= n) {
      out = first.subarray(0, n)
      if (first.length === n) this.chunks.shift()
      else this.chunks[0] = first.subarray(n)
    } else {
      out = this.alloc(n)
      let filled = 0
      while (filled < n) {
        const c = this.chunks[0]
        const k = Math.min(c.length, n - filled)
        c.copy(out, filled, 0, k)
        filled += k
        if (k === c.length) this.chunks.shift()
        else this.chunks[0] = c.subarray(k)
      }
    }
    this.buffered -= n
    if (this.paused && this.buffered < HIGH_WATER / 2) {
      this.paused = false
      this.stream.resume()
    }
    return out
  }

  /** The next whole frame, or null at a clean end of stream between frames. */
  async next(): Promise<Frame | null> {
    if (!(await this.waitFor(FRAME_HEADER_SIZE))) {
      if (this.buffered > 0) throw new ProtocolError('FRAME_TRUNCATED', `stream ended inside a frame header (${this.buffered} bytes)`)
      return null
    }
    const header = decodeFrameHeader(this.take(FRAME_HEADER_SIZE))
    if (!(await this.waitFor(header.length))) {
      throw new ProtocolError('FRAME_TRUNCATED', `stream ended inside a frame: ${this.buffered} of ${header.length} payload bytes`)
    }
    const fields = BODY_AFTER[header.type]
    if (fields !== undefined && header.length > fields) {
      const payload = this.take(fields)
      return {type: header.type, payload, body: this.take(header.length - fields)}
    }
    return {type: header.type, payload: header.length === 0 ? Buffer.alloc(0) : this.take(header.length)}
  }
}
