// The compressing the run sender (run-sender.ts) does on its own thread: the sample test of
// every piece, and whole pieces where a worker thread would cost more than the work itself (the
// first INLINE_BYTES, and pieces found cheap to compress). It also keeps what whole pieces cost,
// wherever they were compressed, which is how a piece is found cheap.
import {compressPiece, Compressor} from './codec.js'

/** Kept compressed only if it saves at least this share (else the receiver's work buys little). */
export const KEEP_BELOW = 0.9
/** Bytes tried first; a piece whose sample does not shrink goes raw untried. */
export const SAMPLE_BYTES = 16 << 10
/**
 * Raw bytes compressed on the sending thread before the workers start: a seed or a push that
 * sends a few MB never pays for starting a thread and loading zstd there (0.1-0.2 CPU-s on this
 * machine, more than compressing 16 MiB, ~50 ms); a transfer that goes on starts them then.
 */
export const INLINE_BYTES = 16 << 20
/**
 * While the pieces compressed whole so far at a level took at most this many ms per MiB (500
 * MB/s and up; zstd -1 does text at 300-500 MB/s per core here), the next is compressed on this
 * thread even once the workers run: a worker's round trip (a copy each way, two thread wake-ups)
 * cost more than that, 3-80 ms a piece on a busy 2-core host where the work was 0.3 ms, and the
 * sender waited for it in order (loopback bench: 0.7-1.7 s of waiting on the workers for 0.1 s of
 * compressing). Judged by whole pieces, not the sample: a 16 KiB sample's time is mostly setup.
 */
export const CHEAP_MS_PER_MIB = 2

export class ThisThread {
  /** For the sample test only (16 KiB inputs: small tables, kept for the whole session). */
  private sampler: Compressor | undefined
  private whole: Compressor | undefined
  /** ms per byte of compressing a whole piece, per level (running average, here or in a worker). */
  private readonly cost = new Map<number, number>()

  constructor(private budget = INLINE_BYTES) {}

  /**
   * The sample test (16 KiB: microseconds): a piece whose sample does not shrink never goes to
   * a worker, so random data costs no copy there and back (0.2-0.5 CPU-s per GiB of the mixed
   * disk's random part). Its own zstd context stays small (zstd sizes its tables to the 16 KiB it
   * is given). Its time and bytes, and whether it shrank (undefined: the piece is no larger than
   * a sample, so it is not tried alone).
   */
  sample(piece: Buffer, level: number): {ms: number; tried: number; fails: boolean} | undefined {
    if (piece.length <= SAMPLE_BYTES) return undefined
    const z = (this.sampler ??= new Compressor())
    const t0 = performance.now()
    const fails = !z.compress(piece.subarray(0, SAMPLE_BYTES), level, Math.floor(SAMPLE_BYTES * KEEP_BELOW))
    return {ms: performance.now() - t0, tried: SAMPLE_BYTES, fails}
  }

  /** Takes `n` bytes from the budget compressed here before the workers start; false once it is spent. */
  spend(n: number): boolean {
    if (this.budget <= 0) return false
    this.budget -= n
    return true
  }

  /** Whether a piece at `level` is cheap enough to compress here (CHEAP_MS_PER_MIB). */
  cheap(level: number): boolean {
    const perByte = this.cost.get(level)
    return perByte !== undefined && perByte * (1 << 20) <= CHEAP_MS_PER_MIB
  }

  /** `src` (sampled already) compressed into `dst` (compressBound long); `packed` -1: it did not shrink. */
  compress(src: Buffer, dst: Buffer, level: number): {packed: number; tried: number; ms: number} {
    const first = !this.whole
    const t0 = performance.now()
    const z = (this.whole ??= new Compressor())
    const {packed, tried} = compressPiece(z, src, dst, level, src.length, KEEP_BELOW)
    const ms = performance.now() - t0
    // Not the first: zstd allocates its tables then (3x a piece's time on a busy host, which
    // started the workers for pieces that then all stayed here).
    if (!first) this.record(level, {tried, length: src.length, ms})
    return {packed, tried, ms}
  }

  /** A piece was compressed (here, or in a worker when it is back): what it cost, if it was tried whole. */
  record(level: number, z: {tried: number; length: number; ms: number}): void {
    if (z.tried !== z.length || z.length <= SAMPLE_BYTES) return
    const c = z.ms / z.length
    const old = this.cost.get(level)
    this.cost.set(level, old === undefined ? c : (old + c) / 2)
  }
}
