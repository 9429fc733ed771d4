// A Duplex over a worker_threads MessagePort, so a local-path target can run the receiver
// on the other core while still speaking the byte-level wire protocol. Small writes are
// batched (one transferred ArrayBuffer per batch: one copy, no structured clone of whole
// pools); a chunk that lives in shared memory (the disk reader's buffers) is posted as a view,
// without a copy. Flow control: acknowledgements of bytes the reader consumed.
import {Duplex} from 'node:stream'
import type {MessagePort} from 'node:worker_threads'

type PortMessage = {t: 'd'; b: ArrayBuffer} | {t: 's'; v: Uint8Array} | {t: 'a'; n: number} | {t: 'e'} | {t: 'x'; m: string}

const BATCH_BYTES = 4 << 20
const WINDOW_BYTES = 16 << 20
/** Shared chunks smaller than this are cheaper to copy into the batch than to post alone. */
const SHARE_MIN = 16 << 10

class PortDuplex extends Duplex {
  private batch: Buffer[] = []
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
        const n = msg.b.byteLength
        this.wantMore = this.push(Buffer.from(msg.b))
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
    if (this.batchBytes === 0) return
    const ab = new ArrayBuffer(this.batchBytes)
    const view = Buffer.from(ab)
    let off = 0
    for (const c of this.batch) {
      c.copy(view, off)
      off += c.length
    }
    this.unacked += this.batchBytes
    this.batch = []
    this.batchBytes = 0
    this.port.postMessage({t: 'd', b: ab}, [ab])
  }

  private add(chunk: Buffer): void {
    if (chunk.length >= SHARE_MIN && chunk.buffer instanceof SharedArrayBuffer) {
      this.flush()
      this.unacked += chunk.length
      this.port.postMessage({t: 's', v: new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)})
      return
    }
    this.batch.push(chunk)
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
    if (this.batchBytes >= BATCH_BYTES) this.flush()
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
