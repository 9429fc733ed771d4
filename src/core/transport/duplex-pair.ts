// Two connected in-memory Duplex streams: what one writes, the other reads, with
// backpressure. A local-path target runs the receiver on one end, so a local sync speaks
// exactly the wire protocol an SSH sync does.
import {Duplex} from 'node:stream'
import {isLent} from '../protocol/lent-buffers.js'

class PairEnd extends Duplex {
  peer!: PairEnd
  private pendingCallback: (() => void) | undefined
  private hungUp = false

  /**
   * The owner of this end is done with the connection and reads no more: what the peer has
   * written and will write is dropped (its blocked write goes on), as when a receiver closes
   * its socket after an ERROR. The peer can still read what this end wrote before, so it
   * learns why; without this a peer blocked on a full pipe would wait forever.
   */
  hangUp(): void {
    this.hungUp = true
    const cb = this.peer.pendingCallback
    this.peer.pendingCallback = undefined
    cb?.()
  }

  override _read(): void {
    const cb = this.peer.pendingCallback
    this.peer.pendingCallback = undefined
    cb?.()
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.peer.hungUp) {
      callback()
      return
    }
    // The peer gets this very buffer, so this carrier keeps references: by the ownership rule
    // (lent-buffers.ts) a buffer lent until this write's callback is copied, as its writer
    // reuses it then. Other parts are lent until a protocol acknowledgement, and go as they are.
    if (this.peer.push(isLent(chunk) ? Buffer.from(chunk) : chunk)) callback()
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

export type DuplexPairEnd = Duplex & {hangUp(): void}

export function duplexPair(highWaterMark = 4 << 20): [DuplexPairEnd, DuplexPairEnd] {
  const a = new PairEnd({highWaterMark, readableHighWaterMark: highWaterMark})
  const b = new PairEnd({highWaterMark, readableHighWaterMark: highWaterMark})
  a.peer = b
  b.peer = a
  return [a, b]
}
