// The sender's side of compression, shared by the full sync and the push: a run of contiguous
// blocks that must travel goes as one DATA_Z when it compresses, else block by block as DATA
// (through the caller's own raw path, which keeps its buffer-lending rules). A run is cut into
// pieces of RUN_BYTES. Data that does not compress costs one block's try: the first block is
// compressed alone, and a piece whose first block does not shrink goes raw without trying the
// rest (random data, encrypted or already compressed files).
import {HASH_LENGTH} from '../hash/block-hash.js'
import {encodeCompressedRunFields, MAX_RUN_BLOCKS} from '../protocol/compressed-data.js'
import {FrameType} from '../protocol/frame.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import type {Throttle} from '../sync/throttle.js'
import {Codec, codecName, Compressor} from './codec.js'
import type {LevelChooser} from './policy.js'

/** Uncompressed bytes per DATA_Z (or one block, if larger). */
export const RUN_BYTES = 1 << 20
/** Kept compressed only if it saves at least this share (else the receiver's work buys little). */
const KEEP_BELOW = 0.9

export interface CompressStats {
  codec: string
  /** Levels used (auto moves between them; 0 is raw). */
  levels: number[]
  /** The level in force at the end (auto: where its measurements settled). */
  finalLevel: number
  /** Compressed runs sent, and the raw bytes they stood for. */
  runs: number
  rawBytes: number
  /** DATA_Z payload bytes for those runs. */
  compressedBytes: number
  /** Raw bytes of runs that were tried but went raw (did not shrink). */
  incompressibleBytes: number
  /** Time spent compressing. */
  compressMs: number
}

export class RunSender {
  private readonly compressor = new Compressor()
  private readonly s = {runs: 0, rawBytes: 0, compressedBytes: 0, incompressibleBytes: 0, compressMs: 0}

  constructor(
    private readonly writer: FrameWriter,
    private readonly chooser: LevelChooser,
    private readonly bs: number,
    private readonly throttle: Throttle,
  ) {}

  /**
   * Send blocks first..first+count-1, whose bytes lie back to back in `data` (the last block may
   * be short) and whose hashes lie in `hashes`. `raw(i)` sends block first+i as DATA the
   * caller's way. Returns the bytes that went on the wire for the blocks (payloads).
   */
  async sendRun(first: number, count: number, data: Buffer, hashes: Buffer, raw: (i: number) => Promise<void>): Promise<number> {
    const bs = this.bs
    const per = Math.min(MAX_RUN_BLOCKS, Math.max(1, Math.floor(RUN_BYTES / bs)))
    let wire = 0
    for (let i = 0; i < count; i += per) {
      const n = Math.min(per, count - i)
      const piece = data.subarray(i * bs, Math.min((i + n) * bs, data.length))
      const t0 = performance.now()
      const level = this.chooser.level()
      const packed = level > 0 ? this.pack(piece, level) : null
      if (packed) {
        const fields = encodeCompressedRunFields({
          first: first + i,
          count: n,
          rawLength: piece.length,
          codec: Codec.ZSTD,
          hashes: hashes.subarray(i * HASH_LENGTH, (i + n) * HASH_LENGTH),
        })
        await this.throttle.take(fields.length + packed.length)
        await this.writer.send(FrameType.DATA_Z, fields, packed)
        this.s.runs++
        this.s.rawBytes += piece.length
        this.s.compressedBytes += fields.length + packed.length
        wire += fields.length + packed.length
      } else {
        if (level > 0) this.s.incompressibleBytes += piece.length
        for (let k = i; k < i + n; k++) await raw(k)
        wire += piece.length + n * (8 + HASH_LENGTH)
      }
      this.chooser.record(piece.length, performance.now() - t0)
    }
    return wire
  }

  /** The piece compressed (a copy: the frame keeps it), or null if it would not shrink enough. */
  private pack(piece: Buffer, level: number): Buffer | null {
    const t0 = performance.now()
    try {
      const head = piece.subarray(0, Math.min(this.bs, piece.length))
      if (head.length < piece.length && !this.compressor.compress(head, level, Math.floor(head.length * KEEP_BELOW))) return null
      const out = this.compressor.compress(piece, level, Math.floor(piece.length * KEEP_BELOW))
      return out && Buffer.from(out)
    } finally {
      this.s.compressMs += performance.now() - t0
    }
  }

  stats(): CompressStats {
    return {codec: codecName(Codec.ZSTD), levels: [...this.chooser.used].sort((a, b) => a - b), finalLevel: this.chooser.current(), ...this.s}
  }
}
