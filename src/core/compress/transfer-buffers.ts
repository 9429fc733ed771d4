// The buffers a compression piece travels in, reused instead of allocated per piece. A piece
// needs two: its raw bytes (copied in from the caller's chunk) and room for its compressed
// bytes; both go to a worker thread and back (transferred, never shared), then one of them
// goes out on the wire. Fresh ones per piece were 2 MiB of ArrayBuffers per MiB sent, garbage
// V8 collects only once tens of MiB of it pile up: the SSH client of a fresh 4 GiB replica
// peaked at 171-185 MiB with them (122 without compression).
//
// Ownership (lent-buffers.ts): take() hands one out; it comes back with give() only once
// nothing reads it any more: from the worker's reply for the buffer not sent, from the
// carrier's write callback (FrameWriter.sendLent) for the one sent. A buffer given back twice,
// or one detached by a transfer (length 0), is not kept: two holders of one buffer would be wrong bytes
// on the replica.

export class TransferBuffers {
  /** Free buffers by size: a piece gets one of its own length (a push's pieces are mostly one block). */
  private readonly free = new Map<number, ArrayBuffer[]>()
  private cached = 0
  /** Buffers allocated so far (tests: reuse means few). */
  made = 0

  constructor(
    /** Bytes kept for reuse at most (more may be out at once; the surplus is left to the GC). */
    private readonly maxCached: number,
  ) {}

  /** A buffer of exactly `n` bytes. */
  take(n: number): ArrayBuffer {
    const reused = this.free.get(n)?.pop()
    if (reused) {
      this.cached -= n
      return reused
    }
    this.made++
    return new ArrayBuffer(n)
  }

  give(buf: ArrayBuffer): void {
    const n = buf.byteLength
    if (n === 0 || this.cached + n > this.maxCached) return
    let list = this.free.get(n)
    if (!list) this.free.set(n, (list = []))
    if (list.includes(buf)) return
    list.push(buf)
    this.cached += n
  }
}
