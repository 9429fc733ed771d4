// The receiver's half of the full sync's proof: the whole-disk digest computed from what is on
// the replica. A block the client did not touch contributes the checksum from the scan; a block
// written or zeroed is read back from the replica and hashed again, and must match what was sent
// (or read as zeros). So the proof covers the replica's bytes, not the frames, and costs no
// second full read.
import {ProtocolError, VerifyError} from '../errors.js'
import type {BlockHasher, StreamHasher} from '../hash/block-hash.js'
import {digestSlots, hashRuns, sumOf} from '../disk/read-hash.js'
import {holeMap} from '../disk/hole-map.js'
import type {ReadableDisk} from '../disk/read-hash.js'
import type {ScannedChunk} from './receiver-scan.js'

/** The fold re-reads written blocks in runs of at most this much (one reused buffer). */
const FOLD_RUN_BYTES = 4 << 20

export class ReplicaProof {
  /** Blocks written and not yet folded, with the hash the client sent for each. */
  private readonly written = new Map<number, Buffer>()
  /** Blocks zeroed and not yet folded. */
  private readonly zeroed = new Set<number>()
  /** Every block below this is in the digest. */
  private digestedUpto = 0
  private readonly stream: StreamHasher
  private foldBuf: Buffer | undefined

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
   */
  async fold(upto: number, scanned: readonly ScannedChunk[]): Promise<void> {
    const bs = this.blockSize
    // One buffer for every fold that cannot map: fresh memory costs a page fault per page.
    const runBuf = () => (this.foldBuf ??= this.replica.readBuffer?.(Math.max(FOLD_RUN_BYTES, bs)) ?? Buffer.allocUnsafeSlow(Math.max(FOLD_RUN_BYTES, bs)))
    const perRun = Math.max(1, Math.floor(Math.max(FOLD_RUN_BYTES, bs) / bs))
    // The blocks written or zeroed below `upto`, in order; the rest are folded as scanned.
    const touched = [...this.written.keys(), ...this.zeroed].filter((t) => t < upto).sort((x, y) => x - y)
    let k = 0
    let b = this.digestedUpto
    while (b < upto) {
      const nextTouched = k < touched.length ? touched[k] : upto
      if (b < nextTouched) {
        this.foldScanned(b, nextTouched, scanned)
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
      const len = Math.min((end - b) * bs, this.diskSize - b * bs)
      // A zeroed run the file system reports as one hole (a punched zero run) reads as zeros:
      // proved from the extent map, not by reading it (a buffered read of a hole fills the page
      // cache with zero pages). Anything else is read back; a run with written blocks always
      // is, without asking the extent map (a synchronous lseek per run cost more than it saved).
      const hole = onlyZeroed && holeMap(this.replica.fd, this.diskSize, bs, b, end - b).allHoles
      const read = await hashRuns(this.replica, this.hasher, hole ? [] : [[0, end - b]], b * bs, len, bs, runBuf)
      for (let i = b; i < end; i++) {
        const sum = sumOf(read, i - b)
        const zero = sum === undefined
        const h = sum ?? this.hasher.zeroHash(this.blockLen(i))
        const expected = this.written.get(i)
        if (expected && !expected.equals(h)) throw new VerifyError(`block ${i} (offset ${i * bs}) reads back from the replica different from what was sent`)
        if (this.zeroed.has(i) && !zero) throw new VerifyError(`block ${i} (offset ${i * bs}) should be zero on the replica but is not`)
        this.stream.update(h)
        this.written.delete(i)
        this.zeroed.delete(i)
      }
      b = end
    }
    this.digestedUpto = upto
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
