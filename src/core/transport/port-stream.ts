// A Duplex over a worker_threads MessagePort, so a local-path target can run the receiver
// on the other core while still speaking the byte-level wire protocol. Under the ownership
// rule (protocol/lent-buffers.ts) this carrier keeps nothing past a write's callback except
// shared memory: writes are copied into a staging buffer as they come, so a writer may reuse
// a lent buffer once the write callback ran (as over SSH); batches go over as transferred
// ArrayBuffers (no structured clone of whole pools). A chunk that lives in shared memory (a
// full sync's chunk views) is posted as a view, without a copy: it is lent until the
// receiver's acknowledgement (a checkpoint), which its lender waits for anyway.
// Flow control: acknowledgements of bytes the reader consumed.
import {Duplex} from 'node:stream'
import type {MessagePort} from 'node:worker_threads'
import {isLent} from '../protocol/lent-buffers.js'

type PortMessage = {t: 'd'; b: ArrayBuffer; n: number} | {t: 's'; v: Uint8Array} | {t: 'a'; n: number} | {t: 'e'} | {t: 'x'; m: string}

const BATCH_BYTES = 4 << 20
/** The staging buffer's size; a flush of at least HAND_OVER_MIN hands the buffer itself over. */
const STAGING_BYTES = 1 << 20
const HAND_OVER_MIN = 256 << 10
const WINDOW_BYTES = 16 << 20
/** Shared chunks smaller than this are cheaper to copy into the batch than to post alone. */
const SHARE_MIN = 16 << 10

class PortDuplex extends Duplex {
  /** Where writes are copied as they come; batchBytes of it are waiting to be posted. */
  private staging: Buffer | undefined
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
    const staging = this.staging
    const n = this.batchBytes
    if (!staging || n === 0) return
    this.unacked += n
    this.batchBytes = 0
    if (n >= HAND_OVER_MIN) {
      // A full batch: hand the staging buffer itself over (allocUnsafeSlow gave it an
      // ArrayBuffer of its own) and start a new one at the next write.
      this.staging = undefined
      this.port.postMessage({t: 'd', b: staging.buffer, n}, [staging.buffer as ArrayBuffer])
      return
    }
    // A small batch (a frame's header and fields before a shared body, a status, an ack):
    // copied out at its size. Handing over a whole staging buffer for a few bytes cost a
    // fresh 1 MiB allocation per frame, which the receiver's GC then had to account for.
    const ab = new ArrayBuffer(n)
    staging.copy(Buffer.from(ab), 0, 0, n)
    this.port.postMessage({t: 'd', b: ab, n}, [ab])
  }

  private add(chunk: Buffer): void {
    // A lent buffer (lent-buffers.ts) is reused once this write calls back: copied like the rest.
    if (chunk.length >= SHARE_MIN && chunk.buffer instanceof SharedArrayBuffer && !isLent(chunk)) {
      this.flush()
      this.unacked += chunk.length
      this.port.postMessage({t: 's', v: new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)})
      return
    }
    if (this.batchBytes + chunk.length > STAGING_BYTES) this.flush()
    if (chunk.length > STAGING_BYTES) {
      const ab = new ArrayBuffer(chunk.length)
      chunk.copy(Buffer.from(ab))
      this.unacked += chunk.length
      this.port.postMessage({t: 'd', b: ab, n: chunk.length}, [ab])
      return
    }
    // Copied now, not at the flush: the writer may reuse its buffer once we call back.
    this.staging ??= Buffer.allocUnsafeSlow(STAGING_BYTES)
    chunk.copy(this.staging, this.batchBytes)
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
    if (this.batchBytes >= STAGING_BYTES) this.flush()
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
