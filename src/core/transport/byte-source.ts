// What the frame reader reads from: exact-length reads over received bytes. Two sources
// implement it: SocketReader (socket-reader.ts), which can take a server socket over and
// have the kernel read into recycled slabs (the receiver over SSH: a measured speed win),
// and StreamSource (stream-source.ts), over any Readable (the in-process duplex pair, the
// worker thread's port, an SSH channel, a socket that could not be taken over).
//
// Bytes a source returns are lent under the carrier's one ownership rule (lent-buffers.ts).

/** The code of the error a read fails with when the peer closed first. */
export const EOF_CODE = 'NBD_EOF'

/** Gives a buffer of exactly `n` bytes for a field that must be copied (spans chunks). */
export type CopyTarget = (n: number) => Buffer

export interface ByteSource {
  /** Bytes received and not yet consumed. */
  readonly available: number
  /** Bytes received since the start (an idle timer's way to see that the peer is still there). */
  readonly received: number
  /**
   * True when what read() returns without a CopyTarget may be overwritten by later reads
   * (slabs); whoever keeps such bytes past the next read copies them.
   */
  readonly reusesMemory: boolean
  /**
   * Exactly `n` bytes; rejects with a ProtocolError coded EOF_CODE if the peer ends first. With
   * a `target`, the bytes are lent until release(): a view of received memory the source will
   * not reuse before then, or a copy into `target(n)`.
   */
  read(n: number, target?: CopyTarget): Promise<Buffer>
  /** As read(), if the `n` bytes are here already (no promise), else undefined. */
  readNow(n: number, target?: CopyTarget): Buffer | undefined
  /** A copy of the first `n` bytes, not consumed; fewer when the peer ended first. */
  peek(n: number): Promise<Buffer>
  /** Give back what a read with a target lent. False if `b` is not a view this source lent. */
  release(b: Buffer): boolean
  /** Fail the waiting read and every later one that would wait with `err`. */
  cancel(err: Error): void
}
