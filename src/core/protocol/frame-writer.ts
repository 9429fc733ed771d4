// Writes frames to a stream with backpressure: resolves once the stream accepts more.
import type {Writable} from 'node:stream'
import {TransportError} from '../errors.js'
import {encodeFrameHeader, type FrameTypeId} from './frame.js'
import {markLent} from './lent-buffers.js'

export class FrameWriter {
  private failed: Error | undefined
  /** Set by fail(): what every send and every wait for drain rejects with from then on. */
  private fatal: Error | undefined
  /** When the last frame was handed to the stream (performance.now()): a keepalive pump's clock. */
  lastSentMs = performance.now()
  /** The type of the last frame sent (0 before the first): names the phase a timeout cut. */
  lastType = 0

  constructor(private stream: Writable) {
    this.watch(stream)
  }

  /** Write to `stream` from now on (a client that reconnected after its HELLO was refused). */
  rebind(stream: Writable): void {
    this.stream = stream
    this.failed = undefined
    this.lastType = 0
    this.watch(stream)
  }

  /**
   * Keep the frames sent from now until the returned release in the stream, to leave in one
   * write. Two small frames a few ms apart otherwise leave as two TCP segments, and an sshd on
   * the way (Nagle on for a tunnel-only login) holds the second until the client acknowledges
   * the first, which a client waiting for that second frame does only after its delayed-ACK
   * timer: 40 ms. A send that would wait for the stream to drain releases the hold first.
   */
  hold(): () => void {
    const stream = this.stream
    stream.cork()
    let held = true
    const release = () => {
      if (!held) return
      held = false
      this.releaseHold = undefined
      stream.uncork()
    }
    this.releaseHold = release
    return release
  }

  private releaseHold: (() => void) | undefined

  /** Whether a frame sent now goes out at once: the stream is open and not asking to drain. */
  get idle(): boolean {
    return !this.fatal && !this.failed && !this.stream.destroyed && !this.stream.writableEnded && !this.stream.writableNeedDrain
  }

  /** Fail every send from now on, and the one waiting for drain, with `err`; cut the stream. */
  fail(err: Error): void {
    this.fatal ??= err
    this.stream.destroy(err)
  }

  private watch(stream: Writable): void {
    stream.on('error', (err) => {
      if (stream === this.stream) this.failed ??= err
    })
  }

  /**
   * Send one frame; `parts` are written as they are (no copy of large payloads). They are lent
   * until the receiver acknowledges them in the protocol, or for good (lent-buffers.ts): the
   * caller does not change them before then, as an in-memory carrier hands them on as they are.
   */
  async send(type: FrameTypeId, ...parts: Buffer[]): Promise<void> {
    if (this.fatal) throw this.fatal
    if (this.failed) throw new TransportError('STREAM_FAILED', `the connection failed: ${this.failed.message}`, {cause: this.failed})
    if (this.stream.destroyed || this.stream.writableEnded) throw new TransportError('STREAM_CLOSED', 'the connection is closed')
    let length = 0
    for (const p of parts) length += p.length
    const header = encodeFrameHeader(type, length)
    this.lastSentMs = performance.now()
    this.lastType = type
    let ok: boolean
    if (parts.length === 1 && parts[0].length <= 256) {
      ok = this.stream.write(Buffer.concat([header, parts[0]]))
    } else {
      this.stream.cork()
      this.stream.write(header)
      for (let i = 0; i < parts.length - 1; i++) this.stream.write(parts[i])
      ok = parts.length === 0 ? true : this.stream.write(parts[parts.length - 1])
      this.stream.uncork()
    }
    if (!ok) {
      this.releaseHold?.()
      await this.drained()
    }
  }

  /**
   * Send a frame whose bulk `body` is lent to the carrier until its write callback
   * (lent-buffers.ts): `release` runs then, once the stream has taken its bytes (a carrier that
   * keeps references copied them first), so the caller can reuse the buffer. It also runs if
   * the write fails.
   */
  async sendLent(type: FrameTypeId, fields: Buffer, body: Buffer, release: () => void): Promise<void> {
    if (this.fatal || this.failed || this.stream.destroyed || this.stream.writableEnded) {
      release()
      return this.send(type, fields, body) // throws the same error as any send
    }
    const header = encodeFrameHeader(type, fields.length + body.length)
    markLent(body)
    this.lastSentMs = performance.now()
    this.lastType = type
    this.stream.cork()
    this.stream.write(header)
    this.stream.write(fields)
    const ok = this.stream.write(body, () => release())
    this.stream.uncork()
    if (!ok) {
      this.releaseHold?.()
      await this.drained()
    }
  }

  private drained(): Promise<void> {
    const stream = this.stream
    return new Promise((resolve, reject) => {
      const onDrain = () => {
        cleanup()
        resolve()
      }
      const onClose = () => {
        cleanup()
        reject(this.fatal ?? new TransportError('STREAM_CLOSED', `the connection closed${this.failed ? `: ${this.failed.message}` : ''}`))
      }
      const cleanup = () => {
        stream.off('drain', onDrain)
        stream.off('close', onClose)
      }
      stream.on('drain', onDrain)
      stream.on('close', onClose)
    })
  }

  end(): void {
    if (!this.stream.writableEnded && !this.stream.destroyed) this.stream.end()
  }
}
