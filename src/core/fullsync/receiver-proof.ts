// The receiver's half of the full sync's proof: the whole-disk digest computed from what is on
// the replica. A block the client did not touch contributes the checksum from the scan; a block
// written or zeroed is read back from the replica and hashed again, and must match what was sent
// (or read as zeros). So the proof covers the replica's bytes, not the frames, and costs no
// second full read.
import {ProtocolError, VerifyError} from '../errors.js'
import type {BlockHasher, StreamHasher} from '../hash/block-hash.js'
import {canMapHashing, digestSlots, hashRuns, sumOf, type BlockSums} from '../disk/read-hash.js'
import {holeMap} from '../disk/hole-map.js'
import type {ReadableDisk} from '../disk/read-hash.js'
import type {ScannedChunk} from './receiver-scan.js'

/** The fold re-reads written blocks in runs of at most this much. */
const FOLD_RUN_BYTES = 4 << 20
/** Runs read back at once (a buffer of FOLD_RUN_BYTES each, kept across folds). */
const FOLD_READS_IN_FLIGHT = 4

interface ScannedSegment {
  kind: 'scanned'
  from: number
  to: number
}
interface TouchedSegment {
  kind: 'touched'
  from: number
  to: number
  /** No block of the run was written, only zeroed: a hole proves it without a read. */
  onlyZeroed: boolean
}
type Segment = ScannedSegment | TouchedSegment

export class ReplicaProof {
  /** Blocks written and not yet folded, with the hash the client sent for each. */
  private readonly written = new Map<number, Buffer>()
  /** Blocks zeroed and not yet folded. */
  private readonly zeroed = new Set<number>()
  /** Every block below this is in the digest. */
  private digestedUpto = 0
  private readonly stream: StreamHasher
  private readonly buffers: Buffer[] = []
  private allocated = 0
  private readonly waiting: Array<() => void> = []

  constructor(
    private readonly replica: ReadableDisk,
    private readonly diskSize: number,
    private readonly blockSize: number,
    private readonly hasher: BlockHasher,
  ) {
    this.stream = hasher.createStream()
  }

  private blockLen(b: number): number {
    return Math.min(this.blockSize, this.diskSize - b * this.blockSize)
  }

  /** Block `block` was written with data whose hash is `hash`. */
  wrote(block: number, hash: Buffer): void {
    this.written.set(block, Buffer.from(hash))
    this.zeroed.delete(block)
  }

  /** Blocks [start, start + count) were zeroed. */
  zeroedRun(start: number, count: number): void {
    for (let b = start; b < start + count; b++) {
      this.zeroed.add(b)
      this.written.delete(b)
    }
  }

  /** The digest over every block folded so far (call once, after the last fold). */
  digest(): Buffer {
    return this.stream.digest()
  }

  /**
   * Fold blocks [digestedUpto, upto) into the digest, re-reading the ones written or zeroed;
   * `scanned` holds the scan's checksums of the others. The writes below `upto` are done.
   * Up to FOLD_READS_IN_FLIGHT runs are read at once (a read through an O_DIRECT descriptor
   * waits on the device: one at a time left it idle between reads); each is checked and folded
   * in order.
   */
  async fold(upto: number, scanned: readonly ScannedChunk[]): Promise<void> {
    const segments = this.segments(upto)
    const reads = new Map<number, Promise<BlockSums>>()
    let started = 0
    const startReads = (from: number) => {
      for (started = Math.max(started, from); started < segments.length && reads.size < FOLD_READS_IN_FLIGHT; started++) {
        const s = segments[started]
        if (s.kind === 'touched') reads.set(started, this.readSegment(s))
      }
    }
    try {
      for (let i = 0; i < segments.length; i++) {
        startReads(i)
        const s = segments[i]
        if (s.kind === 'scanned') {
          this.foldScanned(s.from, s.to, scanned)
          continue
        }
        const read = await (reads.get(i) as Promise<BlockSums>)
        reads.delete(i)
        startReads(i + 1)
        this.foldTouched(s, read)
      }
    } finally {
      // A failed check leaves reads running: their buffers are not reused until they are done.
      await Promise.allSettled(reads.values())
    }
    this.digestedUpto = upto
  }

  /** Blocks [digestedUpto, upto) in order: runs the client left alone, and runs it wrote or zeroed (at most one read each). */
  private segments(upto: number): Segment[] {
    const bs = this.blockSize
    const perRun = Math.max(1, Math.floor(Math.max(FOLD_RUN_BYTES, bs) / bs))
    // The blocks written or zeroed below `upto`, in order; the rest are folded as scanned.
    const touched = [...this.written.keys(), ...this.zeroed].filter((t) => t < upto).sort((x, y) => x - y)
    const out: Segment[] = []
    let k = 0
    let b = this.digestedUpto
    while (b < upto) {
      const nextTouched = k < touched.length ? touched[k] : upto
      if (b < nextTouched) {
        out.push({kind: 'scanned', from: b, to: nextTouched})
        b = nextTouched
        continue
      }
      let end = b
      let onlyZeroed = true
      while (end < upto && end - b < perRun && (this.written.has(end) || this.zeroed.has(end))) {
        if (this.written.has(end)) onlyZeroed = false
        end++
      }
      while (k < touched.length && touched[k] < end) k++
      out.push({kind: 'touched', from: b, to: end, onlyZeroed})
      b = end
    }
    return out
  }

  /**
   * The checksums of a written or zeroed run as the replica holds it. A zeroed run the file
   * system reports as one hole (a punched zero run) reads as zeros: proved from the extent map,
   * not by reading it (a buffered read of a hole fills the page cache with zero pages). Anything
   * else is read back; a run with written blocks always is, without asking the extent map (a
   * synchronous lseek per run cost more than it saved).
   */
  private async readSegment(s: TouchedSegment): Promise<BlockSums> {
    const bs = this.blockSize
    const len = Math.min((s.to - s.from) * bs, this.diskSize - s.from * bs)
    const hole = s.onlyZeroed && holeMap(this.replica.fd, this.diskSize, bs, s.from, s.to - s.from).allHoles
    const runs: Array<[number, number]> = hole ? [] : [[0, s.to - s.from]]
    // Hashed through a mapping (no buffer) where it can; a fresh buffer only if that fails.
    if (hole || canMapHashing(this.replica, this.hasher))
      return hashRuns(this.replica, this.hasher, runs, s.from * bs, len, bs, () => Buffer.allocUnsafeSlow(len))
    const buf = await this.takeBuffer()
    try {
      return await hashRuns(this.replica, this.hasher, runs, s.from * bs, len, bs, () => buf)
    } finally {
      this.giveBack(buf)
    }
  }

  /** Check a touched run's checksums against what was sent (or zeros), and fold them. */
  private foldTouched(s: TouchedSegment, read: BlockSums): void {
    const bs = this.blockSize
    for (let i = s.from; i < s.to; i++) {
      const sum = sumOf(read, i - s.from)
      const zero = sum === undefined
      const h = sum ?? this.hasher.zeroHash(this.blockLen(i))
      const expected = this.written.get(i)
      if (expected && !expected.equals(h)) throw new VerifyError(`block ${i} (offset ${i * bs}) reads back from the replica different from what was sent`)
      if (this.zeroed.has(i) && !zero) throw new VerifyError(`block ${i} (offset ${i * bs}) should be zero on the replica but is not`)
      this.stream.update(h)
      this.written.delete(i)
      this.zeroed.delete(i)
    }
  }

  /** A read buffer: one per read in flight, kept for the next folds (fresh memory costs a page fault per page). */
  private async takeBuffer(): Promise<Buffer> {
    for (;;) {
      const free = this.buffers.pop()
      if (free) return free
      if (this.allocated < FOLD_READS_IN_FLIGHT) {
        const size = Math.max(FOLD_RUN_BYTES, this.blockSize)
        this.allocated++
        return this.replica.readBuffer?.(size) ?? Buffer.allocUnsafeSlow(size)
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve))
    }
  }

  private giveBack(buf: Buffer): void {
    this.buffers.push(buf)
    this.waiting.shift()?.()
  }

  /** Fold blocks [from, to), untouched by the client, with their checksums from the scan: one update per chunk. */
  private foldScanned(from: number, to: number, scanned: readonly ScannedChunk[]): void {
    let b = from
    for (const c of scanned) {
      if (b >= to) break
      if (c.first + c.count <= b) continue
      if (c.first > b) break
      const stop = Math.min(to, c.first + c.count)
      this.stream.update(digestSlots(c.sums, b - c.first, stop - c.first, (i) => this.hasher.zeroHash(this.blockLen(c.first + i))))
      b = stop
    }
    if (b < to) throw new ProtocolError('BLOCK_NOT_SCANNED', `block ${b} was never scanned`)
  }
}
