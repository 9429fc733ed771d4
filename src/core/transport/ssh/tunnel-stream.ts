// A Duplex around one ssh2 channel. ssh2's Channel ignores `destroy(err)` and, when the
// connection dies, ends its channels as if the peer had closed them cleanly; this wrapper
// lets the transport fail a stream with a TransportError instead (`abort`), fails writes
// after the peer closed the channel (ssh2 would leave their callbacks pending forever),
// and keeps backpressure in both directions.

import {Duplex} from 'node:stream'
import type {ClientChannel} from 'ssh2'
import {TransportError} from '../../errors.js'

/** The largest gathered write that goes through the reused staging buffer. */
const STAGING_BYTES = 1 << 20

export class TunnelStream extends Duplex {
  /** Bytes ssh2 took (its write callbacks ran): stops growing once the peer stops reading (the watchdog's sign). */
  sentBytes = 0
  private closedByPeer = false
  private staging: Buffer | undefined
  private pendingWrite: ((err?: Error | null) => void) | undefined

  constructor(
    private readonly channel: ClientChannel,
    private readonly label: string,
    /** Called before each write to the channel: lets the transport gather packets (cork). */
    private readonly beforeWrite?: () => void,
  ) {
    super({allowHalfOpen: true, readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20})
    channel.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) channel.pause()
    })
    channel.on('end', () => this.push(null))
    channel.on('close', () => {
      this.closedByPeer = true
      this.failPendingWrite()
    })
    channel.on('error', (err: Error) => {
      this.destroy(new TransportError('SSH_CHANNEL', `the tunnel to ${label} failed: ${err.message}`, {cause: err}))
    })
  }

  /** Fails the stream with this error (the connection was cut or closed). */
  abort(err: Error): void {
    if (!this.destroyed) this.destroy(err)
  }

  override _read(): void {
    this.channel.resume()
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.closedByPeer) {
      cb(this.closedError())
      return
    }
    this.pendingWrite = cb
    this.beforeWrite?.()
    this.channel.write(chunk, encoding, (err?: Error | null) => {
      if (this.pendingWrite !== cb) return
      this.pendingWrite = undefined
      if (!err) this.sentBytes += chunk.length
      cb(err)
    })
  }

  /**
   * Everything buffered goes to ssh2 as one write: a frame is written as header, fields and
   * block, and ssh2 makes one encrypted packet (and one callback round) per write call, so
   * passing them one by one tripled the packets and halved the rate of a push.
   */
  override _writev(chunks: Array<{chunk: Buffer; encoding: BufferEncoding}>, cb: (err?: Error | null) => void): void {
    if (chunks.length === 1) {
      this._write(chunks[0].chunk, chunks[0].encoding, cb)
      return
    }
    let total = 0
    for (const c of chunks) total += c.chunk.length
    // Gathered into one staging buffer that lives as long as the stream, not a fresh one per
    // call (a fresh 64 KiB+ buffer is page faults on every frame). Reusing it is safe: the
    // next _writev comes only after this one's callback, and ssh2 calls that once it has
    // copied every byte into its packets (or failed).
    if (total > STAGING_BYTES) {
      this._write(
        Buffer.concat(
          chunks.map((c) => c.chunk),
          total,
        ),
        chunks[0].encoding,
        cb,
      )
      return
    }
    this.staging ??= Buffer.allocUnsafeSlow(STAGING_BYTES)
    let off = 0
    for (const c of chunks) off += c.chunk.copy(this.staging, off)
    this._write(this.staging.subarray(0, total), chunks[0].encoding, cb)
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.closedByPeer) this.channel.end()
    cb()
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.pendingWrite = undefined
    try {
      this.channel.close()
    } catch {
      // the connection is gone; nothing to tell the peer
    }
    cb(err)
  }

  private closedError(): TransportError {
    return new TransportError('SSH_CHANNEL_CLOSED', `the replica host closed the tunnel to ${this.label} while data was still being sent`)
  }

  private failPendingWrite(): void {
    const cb = this.pendingWrite
    if (cb === undefined) return
    this.pendingWrite = undefined
    cb(this.closedError())
  }
}
