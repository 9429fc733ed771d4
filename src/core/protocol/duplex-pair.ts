// Two connected in-memory Duplex streams: what one writes, the other reads, with
// backpressure. A local-path target runs the receiver on one end, so a local sync speaks
// exactly the wire protocol an SSH sync does.
import {Duplex} from 'node:stream'

class PairEnd extends Duplex {
  peer!: PairEnd
  private pendingCallback: (() => void) | undefined

  override _read(): void {
    const cb = this.peer.pendingCallback
    this.peer.pendingCallback = undefined
    cb?.()
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.peer.push(chunk)) callback()
    else this.pendingCallback = callback
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.peer.push(null)
    callback()
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const cb = this.pendingCallback
    this.pendingCallback = undefined
    cb?.()
    if (!this.peer.destroyed) this.peer.destroy(err ?? undefined)
    callback(err)
  }
}

export function duplexPair(highWaterMark = 4 << 20): [Duplex, Duplex] {
  const a = new PairEnd({highWaterMark, readableHighWaterMark: highWaterMark})
  const b = new PairEnd({highWaterMark, readableHighWaterMark: highWaterMark})
  a.peer = b
  b.peer = a
  return [a, b]
}
