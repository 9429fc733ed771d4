// Writes frames to a stream with backpressure: resolves once the stream accepts more.
import type {Writable} from 'node:stream'
import {TransportError} from '../errors.js'
import {encodeFrameHeader, type FrameTypeId} from './frame.js'
import {markLent} from './lent-buffers.js'

export class FrameWriter {
  private failed: Error | undefined

  constructor(private readonly stream: Writable) {
    stream.on('error', (err) => {
      this.failed ??= err
    })
  }

  /**
   * Send one frame; `parts` are written as they are (no copy of large payloads). They are lent
   * until the receiver acknowledges them in the protocol, or for good (lent-buffers.ts): the
   * caller does not change them before then, as an in-memory carrier hands them on as they are.
   */
  async send(type: FrameTypeId, ...parts: Buffer[]): Promise<void> {
    if (this.failed) throw new TransportError('STREAM_FAILED', `the connection failed: ${this.failed.message}`, {cause: this.failed})
    if (this.stream.destroyed || this.stream.writableEnded) throw new TransportError('STREAM_CLOSED', 'the connection is closed')
    let length = 0
    for (const p of parts) length += p.length
    const header = encodeFrameHeader(type, length)
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
    if (!ok) await this.drained()
  }

  /**
   * Send a frame whose bulk `body` is lent to the carrier until its write callback
   * (lent-buffers.ts): `release` runs then, once the stream has taken its bytes (a carrier that
   * keeps references copied them first), so the caller can reuse the buffer. It also runs if
   * the write fails.
   */
  async sendLent(type: FrameTypeId, fields: Buffer, body: Buffer, release: () => void): Promise<void> {
    if (this.failed || this.stream.destroyed || this.stream.writableEnded) {
      release()
      return this.send(type, fields, body) // throws the same error as any send
    }
    const header = encodeFrameHeader(type, fields.length + body.length)
    markLent(body)
    this.stream.cork()
    this.stream.write(header)
    this.stream.write(fields)
    const ok = this.stream.write(body, () => release())
    this.stream.uncork()
    if (!ok) await this.drained()
  }

  private drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onDrain = () => {
        cleanup()
        resolve()
      }
      const onClose = () => {
        cleanup()
        reject(new TransportError('STREAM_CLOSED', `the connection closed${this.failed ? `: ${this.failed.message}` : ''}`))
      }
      const cleanup = () => {
        this.stream.off('drain', onDrain)
        this.stream.off('close', onClose)
      }
      this.stream.on('drain', onDrain)
      this.stream.on('close', onClose)
    })
  }

  end(): void {
    if (!this.stream.writableEnded && !this.stream.destroyed) this.stream.end()
  }
}
