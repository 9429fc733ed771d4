// The wire codec: zstd through the optional `zstd-napi` addon (built at install from the zstd
// sources inside its npm tarball). Chosen by benchmark over lz4-napi on the mixed disk (40%
// random, 60% text, 1 MiB runs, one core): zstd level 1 shrank it 1.68x at 0.43 GB/s and
// restored it at 2.1 GB/s; lz4 1.40x at 0.23 GB/s compressing. When the addon is missing the
// codec is absent and the hello offers nothing: the data travels raw, and the results say so.
import {createRequire} from 'node:module'
import {ProtocolError} from '../errors.js'

/** Codec ids on the wire (HELLO codec list, HELLO_OK choice, DATA_Z codec). 0 means none. */
export const Codec = {NONE: 0, ZSTD: 1} as const
export type CodecId = (typeof Codec)[keyof typeof Codec]

interface ZstdBinding {
  CCtx: new () => {compress(dst: Uint8Array, src: Uint8Array, level: number): number}
  DCtx: new () => {decompress(dst: Uint8Array, src: Uint8Array): number}
  compressBound(n: number): number
  minCLevel(): number
  maxCLevel(): number
}

let zstd: ZstdBinding | null | undefined
function binding(): ZstdBinding | null {
  if (zstd !== undefined) return zstd
  if (process.env.VDREP_NO_COMPRESSION === '1') return (zstd = null) // tests: an install without the addon
  try {
    zstd = createRequire(import.meta.url)('zstd-napi/binding') as ZstdBinding
  } catch {
    zstd = null
  }
  return zstd
}

/** The codecs this process can use, in order of preference (offered in the HELLO, picked by the receiver). */
export function localCodecs(): CodecId[] {
  return binding() ? [Codec.ZSTD] : []
}

export function codecName(id: number): string {
  return id === Codec.ZSTD ? 'zstd' : id === Codec.NONE ? 'none' : `codec ${id}`
}

/** Levels a user may name (--compress LEVEL): zstd's own range, fast (negative) levels left out. */
export const MIN_LEVEL = 1
export const MAX_LEVEL = 19

/** One compression context (reused: allocating one per run costs more than a small run's compression). */
export class Compressor {
  private readonly cctx: InstanceType<ZstdBinding['CCtx']>
  private scratch = Buffer.alloc(0)

  constructor() {
    const z = binding()
    if (!z) throw new Error('zstd is not available')
    this.cctx = new z.CCtx()
  }

  /** `src` compressed at `level` into `dst` (at least compressBound(src) long): its length, or -1 if over `limit`. */
  compressInto(dst: Uint8Array, src: Uint8Array, level: number, limit: number): number {
    const n = this.cctx.compress(dst, src, level)
    return n <= limit ? n : -1
  }

  /**
   * `src` compressed at `level` into a scratch buffer reused by the next call (copy what you
   * keep), or null when the result would be larger than `limit` bytes.
   */
  compress(src: Uint8Array, level: number, limit: number): Buffer | null {
    const z = binding() as ZstdBinding
    const bound = z.compressBound(src.length)
    if (this.scratch.length < bound) this.scratch = Buffer.allocUnsafe(bound)
    const n = this.cctx.compress(this.scratch, src, level)
    return n <= limit ? this.scratch.subarray(0, n) : null
  }
}

/**
 * One piece as the sender compresses it (in a worker, or inline on the sending thread): the
 * first `sample` bytes alone first, and the rest only if they shrank; kept only below
 * `keepBelow` of the input. `dst` is at least compressBound(src) long. Returns the compressed
 * length in `dst` (-1: send it raw) and the input bytes compressed.
 */
export function compressPiece(z: Compressor, src: Buffer, dst: Buffer, level: number, sample: number, keepBelow: number): {packed: number; tried: number} {
  const shrinks = (b: Buffer) => z.compressInto(dst, b, level, Math.floor(b.length * keepBelow))
  const head = src.subarray(0, Math.min(sample, src.length))
  if (head.length < src.length && shrinks(head) < 0) return {packed: -1, tried: head.length}
  return {packed: shrinks(src), tried: src.length}
}

/** The largest compressed size of `n` bytes (0 without zstd). */
export function compressBound(n: number): number {
  return binding()?.compressBound(n) ?? 0
}

/** One decompression context, for one connection. */
export class Decompressor {
  private readonly dctx: InstanceType<ZstdBinding['DCtx']>

  constructor() {
    const z = binding()
    if (!z) throw new Error('zstd is not available')
    this.dctx = new z.DCtx()
  }

  /**
   * Decompress into `dst`, which is exactly as long as the run must be: a frame that would
   * produce more fails inside zstd (it never writes past dst), one that produces less is
   * refused here. So the peer's stream can never make this side allocate or write more than
   * the run it declared, which the caller bounded first.
   */
  decompressExact(dst: Buffer, src: Buffer, what: string): void {
    let n: number
    try {
      n = this.dctx.decompress(dst, src)
    } catch (err) {
      throw new ProtocolError('COMPRESSED_RUN_BAD', `${what}: does not decompress into its ${dst.length} bytes: ${(err as Error).message}`)
    }
    if (n !== dst.length) throw new ProtocolError('COMPRESSED_RUN_BAD', `${what}: decompresses to ${n} bytes, ${dst.length} declared`)
  }
}
