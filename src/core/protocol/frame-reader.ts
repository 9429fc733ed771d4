// Splits received bytes into whole frames: the one frame reader of every carrier, on both
// sides. It reads from a ByteSource (transport/byte-source.ts): the receiver over SSH from a
// socket whose reads land in recycled slabs (SocketReader.adopt), everything else from a
// Readable (StreamSource). Each header is validated (magic, type, flags, length cap) before
// anything of its payload is awaited or allocated.
//
// A DATA frame's body is lent to the caller under the carrier's one ownership rule
// (lent-buffers.ts), through the source's lend(): a view of received memory when it lies in
// one piece, else a pooled copy; Frame.release() gives it back. Every other payload is the
// caller's to keep (copied out of a source that reuses its memory).
import type {Readable} from 'node:stream'
import {ProtocolError, TransportError} from '../errors.js'
import {EOF_CODE, type ByteSource} from '../transport/byte-source.js'
import {StreamSource} from '../transport/stream-source.js'
import {decodeFrameHeader, FRAME_HEADER_SIZE, FrameType, type FrameHeader, type FrameTypeId} from './frame.js'
import {DATA_FIELDS_SIZE, decodeKeepalive} from './messages.js'

export interface Frame {
  type: FrameTypeId
  /** The payload; for a frame with a bulk body (DATA), only its fixed fields. */
  payload: Buffer
  /** A DATA frame's block bytes, lent: see release. */
  body?: Buffer
  /**
   * Set with `body`: call it once nothing reads the body any more (its write is done); until
   * then the reader never reuses the body's memory. Not calling it is safe, only slower (the
   * memory is left to the GC).
   */
  release?: () => void
}

/** What the sessions read frames from (a FrameReader; tests may stand in for it). */
export interface FrameSource {
  /** The next whole frame, or null at a clean end of stream between frames. */
  next(): Promise<Frame | null>
  /**
   * The next frame if all of it is here already (no promise, no turn of the event loop), else
   * undefined, and next() gives it once it is. Throws what next() would reject with.
   */
  nextNow?(): Frame | undefined
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

export class FrameReader implements FrameSource {
  private source: ByteSource
  /**
   * Skip KEEPALIVE frames (each checked empty): set by a client whose HELLO asked for them.
   * Unset, a KEEPALIVE is returned like any frame, and the session refuses it as unexpected.
   */
  acceptKeepalives = false
  /** The type of the last frame returned (0 before the first): names the phase a timeout cut. */
  lastType = 0
  private readonly aborter = new AbortController()

  /** Frames from `from`: a ByteSource, or a Readable (read through a StreamSource). */
  constructor(
    from: ByteSource | Readable,
    private readonly idleTimeoutMs = 0,
  ) {
    this.source = isByteSource(from) ? from : new StreamSource(from)
  }

  /** A copy of the first `n` bytes (fewer if the peer stopped first), not consumed. */
  peek(n: number): Promise<Buffer> {
    return this.withIdleTimeout(this.source.peek(n))
  }

  abort(err: Error): void {
    this.stopIdleTimer()
    this.source.cancel(err)
    if (!this.aborter.signal.aborted) this.aborter.abort(err)
  }

  /**
   * Aborted (with the error) by abort(): a session's waits that are not reads (a buffer lent
   * until the peer acknowledges it, a queue with no room) listen to it, so that no wait on the
   * peer outlives the carrier's verdict that the peer is gone (--timeout).
   */
  get aborted(): AbortSignal {
    return this.aborter.signal
  }

  /** Bytes received since the start, keepalives included: a watchdog's sign of a live peer. */
  get received(): number {
    return this.source.received
  }

  /** The input is paused on unread bytes: we, not the peer, are the slow side. */
  get inputPaused(): boolean {
    return this.source.inputPaused
  }

  /** Read from `from` from now on (a client that reconnected after its HELLO was refused). */
  rebind(from: ByteSource | Readable): void {
    this.source = isByteSource(from) ? from : new StreamSource(from)
    this.lastType = 0
    this.pendingHeader = undefined
  }

  async next(): Promise<Frame | null> {
    for (;;) {
      const frame = await this.nextAny()
      if (frame === null)
        this.stopIdleTimer() // the peer is done: nothing more to wait for
      else this.lastType = frame.type
      if (frame === null || frame.type !== FrameType.KEEPALIVE || !this.acceptKeepalives) return frame
      decodeKeepalive(frame.payload)
    }
  }

  /**
   * The receive loop's fast path: at 64 KiB per DATA frame a socket read brings two or three
   * frames, and each frame through next() cost two async calls and a turn of the microtask
   * queue. A header whose payload is not all here yet is kept for next().
   */
  nextNow(): Frame | undefined {
    for (;;) {
      const src = this.source
      let header = this.pendingHeader
      if (!header) {
        const bytes = src.readNow(FRAME_HEADER_SIZE)
        if (!bytes) return undefined
        header = this.pendingHeader = decodeFrameHeader(bytes)
      }
      if (src.available < header.length) return undefined
      this.pendingHeader = undefined
      const frame = this.payloadNow(header)
      this.lastType = frame.type
      if (frame.type !== FrameType.KEEPALIVE || !this.acceptKeepalives) return frame
      decodeKeepalive(frame.payload)
    }
  }

  /** A header taken by nextNow() whose payload had not all arrived. */
  private pendingHeader: FrameHeader | undefined

  /** The frame of `header`, whose payload is all buffered. */
  private payloadNow(header: FrameHeader): Frame {
    const src = this.source
    const fields = BODY_AFTER[header.type]
    if (fields !== undefined && header.length > fields) {
      const payload = this.keep(src.readNow(fields) as Buffer)
      const body = src.lendNow(header.length - fields) as Buffer
      return {type: header.type, payload, body, release: () => src.release(body)}
    }
    if (header.length === 0) return {type: header.type, payload: Buffer.alloc(0)}
    return {type: header.type, payload: this.keep(src.readNow(header.length) as Buffer)}
  }

  private async nextAny(): Promise<Frame | null> {
    const src = this.source
    const pending = this.pendingHeader
    this.pendingHeader = undefined
    // A clean end between frames is null; an end inside one is FRAME_TRUNCATED (read below).
    if (!pending && src.available === 0 && (await this.peek(1)).length === 0) return null
    const header = pending ?? decodeFrameHeader(src.readNow(FRAME_HEADER_SIZE) ?? (await this.read(FRAME_HEADER_SIZE, 'a frame header')))
    const fields = BODY_AFTER[header.type]
    if (fields !== undefined && header.length > fields) {
      const payload = this.keep(src.readNow(fields) ?? (await this.read(fields, 'a frame')))
      const n = header.length - fields
      // Lent (lent-buffers.ts): the source neither reads into nor hands out this memory again before release().
      const body = src.lendNow(n) ?? (await this.read(n, 'a frame', true))
      return {type: header.type, payload, body, release: () => src.release(body)}
    }
    if (header.length === 0) return {type: header.type, payload: Buffer.alloc(0)}
    return {type: header.type, payload: this.keep(src.readNow(header.length) ?? (await this.read(header.length, 'a frame')))}
  }

  /** A payload can outlive the next read (a hash kept in a journal entry): never a view of a slab. */
  private keep(b: Buffer): Buffer {
    return this.source.reusesMemory ? Buffer.from(b) : b
  }

  /**
   * Waits for `n` bytes under the idle timeout. Fields already buffered are taken with
   * readNow() instead, without a promise or a timer. Arming and clearing a timer for each of a
   * DATA frame's three fields cost `vdrep serve` about 0.2 CPU-s of ~1.2 per 512 MiB received
   * over SSH (medians of 6, A/B).
   */
  private async read(n: number, what: string, lend = false): Promise<Buffer> {
    try {
      return await this.withIdleTimeout(lend ? this.source.lend(n) : this.source.read(n))
    } catch (err) {
      if ((err as {code?: string}).code === EOF_CODE) {
        throw new ProtocolError('FRAME_TRUNCATED', `stream ended inside ${what}: ${this.source.available} of ${n} bytes`)
      }
      throw err
    }
  }

  /**
   * Fails `p` with IDLE_TIMEOUT if the peer sends nothing for idleTimeoutMs while it waits (a
   * slow trickle is not cut). One timer per reader, re-armed only when it fires: a timer armed
   * and cleared for each read that waits (every other DATA frame over SSH) was ~4% of
   * `vdrep serve`'s CPU. A check re-arms when a byte came or a wait started since the last one;
   * so, as before, a wait is cut after between idleTimeoutMs and twice that without a byte.
   */
  private async withIdleTimeout<T>(p: Promise<T>): Promise<T> {
    if (this.idleTimeoutMs <= 0) return p
    this.waits++
    if (this.idleTimer === undefined) {
      this.idleSeen = this.source.received
      // Unref'd: a wait keeps the process alive through its socket; a timer left armed after the
      // session's last wait must not (a SIGTERM'd serve waited for it to lapse).
      // Weakly: a reader whose session is over must not live on in the timer list until the
      // timer lapses (idleTimeoutMs, minutes), holding its socket reader's slabs: a serve taking a
      // push a second kept hundreds of MiB that way.
      const reader = new WeakRef(this)
      this.idleTimer = setTimeout(() => reader.deref()?.idleCheck(), this.idleTimeoutMs).unref()
    } else {
      // A wait that starts now is owed a whole period: the next check sees "activity" and re-arms.
      this.idleSeen = -1
    }
    try {
      return await p
    } finally {
      this.waits--
    }
  }

  private stopIdleTimer(): void {
    if (this.idleTimer === undefined) return
    clearTimeout(this.idleTimer)
    this.idleTimer = undefined
  }

  private waits = 0
  private idleSeen = 0
  private idleTimer: NodeJS.Timeout | undefined
  private idleCheck(): void {
    const timer = this.idleTimer as NodeJS.Timeout
    if (this.waits === 0) {
      // Nothing waits on the peer: the next wait arms the timer again (nothing keeps the process alive).
      this.idleTimer = undefined
      return
    }
    if (this.source.received !== this.idleSeen) {
      this.idleSeen = this.source.received
      timer.refresh()
      return
    }
    this.idleTimer = undefined
    this.source.cancel(new TransportError('IDLE_TIMEOUT', `the peer sent nothing for ${Math.round(this.idleTimeoutMs / 1000)} s`))
  }
}

function isByteSource(x: ByteSource | Readable): x is ByteSource {
  return typeof (x as Partial<ByteSource>).readNow === 'function'
}
