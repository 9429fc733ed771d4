// What the frame reader reads from: exact-length reads over received bytes. Two sources
// implement it: SocketReader (socket-reader.ts), which can take a server socket over and
// have the kernel read into recycled slabs (the receiver over SSH: a measured speed win),
// and StreamSource (stream-source.ts), over any Readable (the in-process duplex pair, the
// worker thread's port, an SSH channel, a socket that could not be taken over).
//
// Bytes a source lends follow the carrier's one ownership rule (protocol/lent-buffers.ts).
import {BufferPool} from '../util/buffer-pool.js'

/** The code of the error a read fails with when the peer closed first. */
export const EOF_CODE = 'NBD_EOF'

export interface ByteSource {
  /** Bytes received and not yet consumed. */
  readonly available: number
  /** Bytes received since the start (an idle timer's way to see that the peer is still there). */
  readonly received: number
  /**
   * True when what read() returns may be overwritten by later reads (slabs); whoever keeps
   * such bytes past the next read copies them, or asks for them with lend().
   */
  readonly reusesMemory: boolean
  /** Exactly `n` bytes; rejects with a ProtocolError coded EOF_CODE if the peer ends first. */
  read(n: number): Promise<Buffer>
  /** As read(), if the `n` bytes are here already (no promise), else undefined. */
  readNow(n: number): Buffer | undefined
  /**
   * As read(), but the bytes are lent until release() (lent-buffers.ts): a view of received
   * memory that the source does not reuse before then, or, for bytes that span two received
   * pieces, a copy into a pooled buffer that the source does not hand out again before then.
   */
  lend(n: number): Promise<Buffer>
  /** As lend(), if the `n` bytes are here already, else undefined. */
  lendNow(n: number): Buffer | undefined
  /** Give back what lend() lent; anything else is ignored. */
  release(b: Buffer): void
  /** A copy of the first `n` bytes, not consumed; fewer when the peer ended first. */
  peek(n: number): Promise<Buffer>
  /** Fail the waiting read and every later one that would wait with `err`. */
  cancel(err: Error): void
}

/**
 * Pooled copies for lent bytes that spanned two received pieces: bytes kept for reuse, and the
 * largest buffer kept. The largest is the tracker's NBD payload (32 MiB, nbd/constants.ts): a
 * larger lend that is not kept is a fresh buffer whose memory returns only when V8 collects it,
 * and qemu's 32 MiB writes then piled up several of them: `vdrep track` peaked at 251 MiB under
 * 320 MiB of writes, 155 MiB with them pooled (issue 21).
 */
const LEND_POOL_BYTES = 32 << 20
const LEND_POOL_MAX_BUFFER = 32 << 20

/** The pool a source copies lent bytes into when they span two received pieces. */
export function lendPool(): BufferPool {
  return new BufferPool(LEND_POOL_BYTES, LEND_POOL_MAX_BUFFER)
}
