// The sender's side of compression, shared by the full sync and the push: a run of contiguous
// blocks that must travel goes as DATA_Z pieces of RUN_BYTES where they compress, else block by
// block as DATA. Compression runs in worker threads (compress-pool.ts) as a pipeline, except
// where a worker costs more than it saves (on this thread: the first INLINE_BYTES, while the
// workers start, and pieces whose sample says they are cheap): a piece
// is handed to a worker and the caller goes on reading and hashing while up to QUEUE_BYTES of
// pieces are compressed and then sent, strictly in the order they were given (the receivers
// check block order). Frames the caller sends between runs (zero runs) go through later() to
// keep that order; before a checkpoint or the end of a bundle the caller drains. A piece auto
// sends raw (level 0) goes through the caller's own raw path (its buffer-lending rules) once
// the queue is empty; so does a piece whose sample (tried on this thread) does not shrink, or it
// is queued as a copy behind the others; a piece a worker found incompressible comes back and goes raw from there.
//
// Memory: a piece's bytes are copied out of the caller's chunk into a reused transfer buffer
// (transfer-buffers.ts) when it is handed over, so the caller may reuse its chunk once sendRun
// resolves (a full sync no longer keeps it until the checkpoint ack); the buffer that goes on
// the wire is lent to the carrier and reused only after its write callback (sendLent).
//
// Never wrong bytes: a worker that fails fails the sync (CompressWorkerError, sticky: every
// later call throws it), and the receiver checks every block's hash after decompressing.
import {HASH_LENGTH} from '../hash/block-hash.js'
import {encodeCompressedRunFields, MAX_RUN_BLOCKS} from '../protocol/compressed-data.js'
import {FrameType} from '../protocol/frame.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import {DATA_FIELDS_SIZE, encodeDataFields} from '../protocol/messages.js'
import type {Throttle} from '../sync/throttle.js'
import {Codec, codecName, compressBound} from './codec.js'
import type {Compressed, CompressPool} from './compress-pool.js'
import type {LevelChooser} from './policy.js'
import {once, type CompressStats} from './run-stats.js'
import {INLINE_BYTES, KEEP_BELOW, ThisThread} from './this-thread.js'
import {TransferBuffers} from './transfer-buffers.js'

export type {CompressStats} from './run-stats.js'

/** Uncompressed bytes per DATA_Z (or one block, if larger). */
export const RUN_BYTES = 1 << 20
/** Raw bytes handed to the workers and not yet sent, at most (bounds the pipeline's memory; 4 pieces keep a worker busy while the carrier sends). */
export const QUEUE_BYTES = 4 << 20
interface Piece {
  first: number
  count: number
  level: number
  rawLength: number
  hashes: Buffer
  result: Promise<Compressed>
}

export class RunSender {
  private readonly s = {runs: 0, rawBytes: 0, compressedBytes: 0, incompressibleBytes: 0, inlineBytes: 0, compressMs: 0, waitMs: 0}
  /** DATA / DATA_Z payload bytes this sender put on the wire (raw pieces through the caller's path included). */
  wireBytes = 0
  private tail: Promise<void> = Promise.resolve()
  private queued = 0
  private pending = 0
  private failure: Error | undefined
  private space: (() => void) | undefined
  private pool: CompressPool | undefined
  /** Samples, the first INLINE_BYTES and cheap pieces, compressed on this thread. */
  private readonly here: ThisThread
  /** Blocks per piece. */
  private readonly per: number
  /** Pieces' raw bytes, and room for their compressed bytes (reused; see the top of the file). */
  private readonly inputs: TransferBuffers
  private readonly outputs: TransferBuffers

  /** `startPool` makes the workers, once `inlineBytes` (INLINE_BYTES) have been compressed here. */
  constructor(
    private readonly writer: FrameWriter,
    private readonly chooser: LevelChooser,
    private readonly bs: number,
    private readonly throttle: Throttle,
    private readonly startPool: () => CompressPool,
    inlineBytes = INLINE_BYTES,
  ) {
    this.here = new ThisThread(inlineBytes)
    this.per = Math.min(MAX_RUN_BLOCKS, Math.max(1, Math.floor(RUN_BYTES / bs)))
    // Room for the queue's pieces, the one being sent and one in the carrier's write; buffers
    // given back past that are left to the GC (compressBound adds well under 5% to a piece).
    const keep = QUEUE_BYTES + 2 * this.per * bs
    this.inputs = new TransferBuffers(keep)
    this.outputs = new TransferBuffers(Math.ceil(keep * 1.05))
  }

  /** The workers, once started (tests kill one). */
  workers(): CompressPool | undefined {
    return this.pool
  }

  /** Transfer buffers allocated so far, both kinds (tests: reuse keeps this small). */
  buffersMade(): number {
    return this.inputs.made + this.outputs.made
  }

  /** A piece whose sample failed, queued behind others: copied (the caller may reuse `piece`), to go raw in order. */
  private rawPiece(piece: Buffer, untried: {ms: number; tried: number}): Compressed {
    const data = this.inputs.take(piece.length)
    piece.copy(Buffer.from(data))
    return {data, out: this.outputs.take(compressBound(piece.length)), length: piece.length, packed: -1, ...untried}
  }

  /**
   * `piece` (copied into a transfer buffer; its sample passed) compressed: on this thread while
   * the inline budget lasts, while the workers start, and while pieces are cheap to compress
   * (CHEAP_MS_PER_MIB); by the workers otherwise.
   */
  private compress(piece: Buffer, level: number): Promise<Compressed> {
    const data = this.inputs.take(piece.length)
    piece.copy(Buffer.from(data))
    const out = this.outputs.take(compressBound(piece.length))
    const cheap = this.here.cheap(level)
    // The workers start once the budget is spent, and take pieces once they have loaded zstd: a
    // piece sent to a starting worker waited for the start (0.4 s on a busy host), the pipeline with it.
    if (!this.pool && !this.here.spend(piece.length) && !cheap) this.pool = this.startPool()
    if (this.pool?.ready && !cheap) {
      const done = this.pool.compress(data, piece.length, out, level, piece.length, KEEP_BELOW) // sampled here already
      return done.then((z) => (this.here.record(level, z), z))
    }
    try {
      this.s.inlineBytes += piece.length
      return Promise.resolve({data, out, length: piece.length, ...this.here.compress(Buffer.from(data, 0, piece.length), Buffer.from(out), level)})
    } catch (err) {
      return Promise.reject(err as Error)
    }
  }

  /**
   * Send blocks first..first+count-1, whose bytes lie back to back in `data` (the last block may
   * be short) and whose hashes lie in `hashes`. `raw(i)` sends block first+i as DATA the
   * caller's way, at once. `data` and `hashes` may be reused once this resolves (copied).
   */
  async sendRun(first: number, count: number, data: Buffer, hashes: Buffer, raw: (i: number) => Promise<void>): Promise<void> {
    const bs = this.bs
    const per = this.per
    for (let i = 0; i < count; i += per) {
      if (this.failure) throw this.failure
      const n = Math.min(per, count - i)
      const piece = data.subarray(i * bs, Math.min((i + n) * bs, data.length))
      const level = this.chooser.level()
      if (level === 0) {
        await this.drain()
        const t0 = performance.now()
        for (let k = i; k < i + n; k++) await raw(k)
        const wire = piece.length + n * DATA_FIELDS_SIZE
        this.wireBytes += wire
        this.chooser.carried(wire, performance.now() - t0)
        this.chooser.sent(piece.length, 0)
        continue
      }
      const tried = this.here.sample(piece, level)
      const untried = tried?.fails ? {ms: tried.ms, tried: tried.tried} : undefined
      if (untried && this.pending === 0) {
        // Incompressible, nothing queued: raw the caller's way, without a copy.
        const t0 = performance.now()
        for (let k = i; k < i + n; k++) await raw(k)
        const wire = piece.length + n * DATA_FIELDS_SIZE
        this.wireBytes += wire
        this.s.incompressibleBytes += piece.length
        this.chooser.compressed(level, untried.tried, untried.ms)
        this.chooser.carried(wire, performance.now() - t0)
        this.chooser.sent(piece.length, level)
        continue
      }
      while (this.queued >= QUEUE_BYTES && !this.failure) await new Promise<void>((resolve) => (this.space = resolve))
      if (this.failure) throw this.failure
      const result = untried ? Promise.resolve(this.rawPiece(piece, untried)) : this.compress(piece, level)
      result.catch(() => undefined) // observed in order by emit()
      const job: Piece = {
        first: first + i,
        count: n,
        level,
        rawLength: piece.length,
        hashes: Buffer.from(hashes.subarray(i * HASH_LENGTH, (i + n) * HASH_LENGTH)),
        result,
      }
      this.queued += piece.length
      this.after(() => this.emit(job))
    }
  }

  /** Send a frame the caller built (a zero run) after everything given before it. */
  async later(send: () => Promise<void>): Promise<void> {
    if (this.failure) throw this.failure
    if (this.pending === 0) return send()
    this.after(send)
  }

  /** Wait until everything given is on its way; throws the first failure. */
  async drain(): Promise<void> {
    await this.tail
    if (this.failure) throw this.failure
  }

  /** Stop the workers (after the session, whatever its outcome). */
  async close(): Promise<void> {
    await this.pool?.close()
  }

  stats(): CompressStats {
    const auto = this.chooser.measured?.()
    return {
      codec: codecName(Codec.ZSTD),
      levels: [...this.chooser.used].sort((a, b) => a - b),
      finalLevel: this.chooser.current(),
      ...this.s,
      ...(auto ? {auto} : {}),
    }
  }

  private after(step: () => Promise<void>): void {
    this.pending++
    this.tail = this.tail.then(async () => {
      try {
        if (!this.failure) await step()
      } catch (err) {
        this.failure ??= err as Error
        this.space?.()
      } finally {
        this.pending--
      }
    })
  }

  private async emit(p: Piece): Promise<void> {
    const w0 = performance.now()
    const z = await p.result
    this.s.waitMs += performance.now() - w0
    this.s.compressMs += z.ms
    this.chooser.compressed(p.level, z.tried, z.ms)
    const t0 = performance.now()
    let wire: number
    if (z.packed >= 0) {
      this.inputs.give(z.data)
      const fields = encodeCompressedRunFields({first: p.first, count: p.count, rawLength: p.rawLength, codec: Codec.ZSTD, hashes: p.hashes})
      wire = fields.length + z.packed
      await this.throttle.take(wire)
      await this.writer.sendLent(FrameType.DATA_Z, fields, Buffer.from(z.out, 0, z.packed), () => this.outputs.give(z.out))
      this.s.runs++
      this.s.rawBytes += p.rawLength
      this.s.compressedBytes += wire
    } else {
      this.outputs.give(z.out)
      const data = Buffer.from(z.data, 0, z.length)
      // Back to the free list once the last block's write has called back (and this loop is done).
      let users = 1
      const drop = () => {
        if (--users === 0) this.inputs.give(z.data)
      }
      this.s.incompressibleBytes += p.rawLength
      wire = 0
      try {
        for (let k = 0; k < p.count; k++) {
          const body = data.subarray(k * this.bs, Math.min((k + 1) * this.bs, data.length))
          await this.throttle.take(body.length)
          users++
          await this.writer.sendLent(FrameType.DATA, encodeDataFields(p.first + k, p.hashes.subarray(k * HASH_LENGTH, (k + 1) * HASH_LENGTH)), body, once(drop))
          wire += body.length + DATA_FIELDS_SIZE
        }
      } finally {
        drop()
      }
    }
    this.wireBytes += wire
    this.chooser.carried(wire, performance.now() - t0)
    this.chooser.sent(p.rawLength, p.level)
    this.queued -= p.rawLength
    const wake = this.space
    this.space = undefined
    wake?.()
  }
}
