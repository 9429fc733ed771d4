// A Duplex over a worker_threads MessagePort, so a local-path target can run the receiver
// on the other core while still speaking the byte-level wire protocol. Writes are copied into
// a batch buffer as they come (one transferred ArrayBuffer per batch: one copy, no structured
// clone of whole pools), so a writer may reuse its buffer once the write callback ran, as over
// SSH; a chunk that lives in shared memory (the disk reader's buffers) is posted as a view,
// without a copy, and its owner keeps it until the receiver acknowledges it (a checkpoint).
// Flow control: acknowledgements of bytes the reader consumed.
import {Duplex} from 'node:stream'
import type {MessagePort} from 'node:worker_threads'

type PortMessage = {t: 'd'; b: ArrayBuffer; n: number} | {t: 's'; v: Uint8Array} | {t: 'a'; n: number} | {t: 'e'} | {t: 'x'; m: string}

const BATCH_BYTES = 4 << 20
const BATCH_ALLOC = 1 << 20
const WINDOW_BYTES = 16 << 20
/** Shared chunks smaller than this are cheaper to copy into the batch than to post alone. */
const SHARE_MIN = 16 << 10

class PortDuplex extends Duplex {
  private batch: Buffer | undefined
  private batchBytes = 0
  private flushScheduled = false
  private unacked = 0
  private blockedCallback: (() => void) | undefined
  private heldAck = 0
  private wantMore = true

  constructor(private readonly port: MessagePort) {
    super({readableHighWaterMark: WINDOW_BYTES, writableHighWaterMark: BATCH_BYTES})
    port.on('message', (msg: PortMessage) => this.onMessage(msg))
    port.on('close', () => {
      if (!this.readableEnded) this.push(null)
    })
  }

  private onMessage(msg: PortMessage): void {
    switch (msg.t) {
      case 'd': {
        const n = msg.n
        this.wantMore = this.push(Buffer.from(msg.b, 0, n))
        if (this.wantMore) this.port.postMessage({t: 'a', n})
        else this.heldAck += n
        break
      }
      case 's': {
        const n = msg.v.byteLength
        this.wantMore = this.push(Buffer.from(msg.v.buffer, msg.v.byteOffset, n))
        if (this.wantMore) this.port.postMessage({t: 'a', n})
        else this.heldAck += n
        break
      }
      case 'a':
        this.unacked -= msg.n
        if (this.unacked < WINDOW_BYTES && this.blockedCallback) {
          const cb = this.blockedCallback
          this.blockedCallback = undefined
          cb()
        }
        break
      case 'e':
        this.push(null)
        break
      case 'x':
        this.destroy(new Error(msg.m))
        break
    }
  }

  override _read(): void {
    if (this.heldAck > 0) {
      this.port.postMessage({t: 'a', n: this.heldAck})
      this.heldAck = 0
    }
  }

  private flush(): void {
    this.flushScheduled = false
    const batch = this.batch
    if (!batch || this.batchBytes === 0) return
    const n = this.batchBytes
    this.unacked += n
    this.batch = undefined
    this.batchBytes = 0
    // allocUnsafeSlow gives the batch an ArrayBuffer of its own, so it can be transferred.
    this.port.postMessage({t: 'd', b: batch.buffer, n}, [batch.buffer as ArrayBuffer])
  }

  private add(chunk: Buffer): void {
    if (chunk.length >= SHARE_MIN && chunk.buffer instanceof SharedArrayBuffer) {
      this.flush()
      this.unacked += chunk.length
      this.port.postMessage({t: 's', v: new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)})
      return
    }
    if (this.batch && this.batchBytes + chunk.length > this.batch.length) this.flush()
    // Batches are cut at 1 MiB: the receiver keeps a whole batch alive until its last frame
    // is dropped, and the GC counts its full size, however little of it a quiet batch used.
    this.batch ??= Buffer.allocUnsafeSlow(Math.max(BATCH_ALLOC, chunk.length))
    chunk.copy(this.batch, this.batchBytes)
    this.batchBytes += chunk.length
  }

  override _writev(chunks: Array<{chunk: Buffer}>, callback: (err?: Error | null) => void): void {
    for (const {chunk} of chunks) this.add(chunk)
    this.afterWrite(callback)
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.add(chunk)
    this.afterWrite(callback)
  }

  private afterWrite(callback: () => void): void {
    if (this.batch && this.batchBytes >= this.batch.length) this.flush()
    else if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(() => this.flush())
    }
    if (this.unacked >= WINDOW_BYTES) this.blockedCallback = callback
    else callback()
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.flush()
    this.port.postMessage({t: 'e'})
    callback()
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    try {
      if (err) this.port.postMessage({t: 'x', m: err.message})
    } catch {
      // port already closed
    }
    const cb = this.blockedCallback
    this.blockedCallback = undefined
    cb?.()
    setImmediate(() => this.port.close())
    callback(err)
  }
}

export function portDuplex(port: MessagePort): Duplex {
  return new PortDuplex(port)
}
