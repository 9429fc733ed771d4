// The receiver's side of compression: a frame source over the session's reader that turns each
// DATA_Z into the DATA frames it stands for, so the full-sync and delta receivers check and
// write them exactly as if they had travelled raw (block range, length and hash, after
// decompression: the proof is over the uncompressed bytes). Installed only when the hello
// agreed on a codec; without it a DATA_Z reaches the session, which refuses it as unexpected.
//
// Zip-bomb safe: the run's uncompressed length is computed here from its blocks and the
// session's disk, the declared length must equal it, and the codec writes into a buffer of
// exactly that size (at most MAX_RUN_BYTES), never past it.
//
// Memory: a run is expanded into a reused buffer, lent to the session through its frames'
// release() (the ownership rule, protocol/lent-buffers.ts): it is reused once every block of
// it is written. A fresh 1 MiB buffer per run was garbage V8 collected only once tens of MiB
// of it piled up (`vdrep serve` peaked at 155-215 MiB over a compressed 4 GiB sync).
// The buffers are page-aligned (with the addon): a block expanded into one is a direct write's
// memory as it is (fullsync/direct-writes.ts takes it without copying it into its staging
// memory; malloc's 1 MiB buffers start 16 bytes past a page, so every block was copied once more).
import {ProtocolError} from '../errors.js'
import {HASH_LENGTH} from '../hash/block-hash.js'
import {decodeCompressedRun, MAX_RUN_BYTES} from '../protocol/compressed-data.js'
import {FrameType} from '../protocol/frame.js'
import type {Frame, FrameSource} from '../protocol/frame-reader.js'
import {encodeDataFields} from '../protocol/messages.js'
import {BufferPool, SharedLease} from '../util/buffer-pool.js'
import {alignedBuffer} from '../native/direct-io.js'
import type {Hello} from '../protocol/messages.js'
import {codecName, Decompressor, localCodecs} from './codec.js'

export interface DecompressStats {
  runs: number
  /** DATA_Z payload bytes received. */
  wireBytes: number
  /** The blocks' bytes they stood for. */
  rawBytes: number
}

export class DecompressingSource implements FrameSource {
  private readonly pending: Frame[] = []
  private readonly decompressor = new Decompressor()
  /** Runs' buffers: a few runs' worth (the session writes a run while the next arrives). */
  private readonly buffers = new BufferPool(8 << 20, MAX_RUN_BYTES, (n) => alignedBuffer(n) ?? Buffer.allocUnsafeSlow(n))
  readonly stats: DecompressStats = {runs: 0, wireBytes: 0, rawBytes: 0}

  constructor(
    private readonly inner: FrameSource,
    private readonly codec: number,
    private readonly blockSize: number,
    private readonly diskSize: number,
  ) {}

  abort(err: Error): void {
    this.inner.abort?.(err)
  }

  async next(): Promise<Frame | null> {
    const queued = this.pending.shift()
    if (queued) return queued
    const frame = await this.inner.next()
    if (!frame || frame.type !== FrameType.DATA_Z) return frame
    this.expand(frame.payload)
    return this.pending.shift() as Frame
  }

  /**
   * The receive loop's fast path (frame-reader.ts): a block of a run expanded already, or the
   * inner source's next frame if it is all here, without a promise per frame.
   */
  nextNow(): Frame | undefined {
    const queued = this.pending.shift()
    if (queued) return queued
    const frame = this.inner.nextNow?.()
    if (!frame || frame.type !== FrameType.DATA_Z) return frame
    this.expand(frame.payload)
    return this.pending.shift() as Frame
  }

  private expand(payload: Buffer): void {
    const run = decodeCompressedRun(payload)
    const {first, count} = run
    if (run.codec !== this.codec)
      throw new ProtocolError('FRAME_MALFORMED', `malformed DATA_Z frame: codec ${codecName(run.codec)}, the hello agreed on ${codecName(this.codec)}`)
    const bs = this.blockSize
    const blockCount = Math.ceil(this.diskSize / bs)
    if (first >= blockCount || count > blockCount - first)
      throw new ProtocolError('BLOCK_OUT_OF_RANGE', `compressed run of blocks ${first}..${first + count - 1} is past the disk's ${blockCount} blocks`)
    const expected = Math.min(count * bs, this.diskSize - first * bs)
    if (run.rawLength !== expected)
      throw new ProtocolError('COMPRESSED_RUN_BAD', `compressed run at block ${first} declares ${run.rawLength} bytes; its ${count} blocks hold ${expected}`)
    const lease = new SharedLease(this.buffers, this.buffers.take(expected))
    const raw = lease.buf
    try {
      this.decompressor.decompressExact(raw, run.compressed, `compressed run at block ${first}`)
    } catch (err) {
      lease.drop()
      throw err
    }
    this.stats.runs++
    this.stats.wireBytes += payload.length
    this.stats.rawBytes += expected
    for (let i = 0; i < count; i++) {
      const hash = run.hashes.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH)
      const body = raw.subarray(i * bs, Math.min((i + 1) * bs, expected))
      this.pending.push({type: FrameType.DATA, payload: encodeDataFields(first + i, hash), body, release: lease.retain()})
    }
    lease.drop()
  }
}

/** The codec a receiver picks from a client's list: the first it has, else none (0). */
export function pickCodec(offered: readonly number[] | undefined, local: readonly number[]): number | undefined {
  if (offered === undefined) return undefined
  return offered.find((c) => c !== 0 && local.includes(c)) ?? 0
}

/** What a receiver's HELLO_OK says about compression: nothing unless the client offered. */
export function helloOkCodec(hello: Hello): {codec?: number} {
  const codec = pickCodec(hello.codecs, localCodecs())
  return codec === undefined ? {} : {codec}
}
