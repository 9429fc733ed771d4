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
// or one detached by a transfer, is not kept: two holders of one buffer would be wrong bytes
// on the replica.

export class TransferBuffers {
  private readonly free: ArrayBuffer[] = []
  /** Buffers allocated so far (tests: reuse means few). */
  made = 0

  constructor(
    /** Bytes of every buffer. */
    readonly size: number,
    /** Buffers kept for reuse at most (more may be out at once; the surplus is left to the GC). */
    private readonly keep: number,
  ) {}

  take(): ArrayBuffer {
    const reused = this.free.pop()
    if (reused) return reused
    this.made++
    return new ArrayBuffer(this.size)
  }

  give(buf: ArrayBuffer): void {
    if (buf.byteLength !== this.size || this.free.length >= this.keep || this.free.includes(buf)) return
    this.free.push(buf)
  }
}
