// Which differences a verify expects. Source and replica legitimately differ where the change
// record says the source moved on since the last commit (blocks written and not pushed yet, or
// in flight); anywhere else a difference is unexpected. The block hash index (the checksums of
// the last committed point, as the client shipped it) tells which side moved: a replica block
// that differs from the index was changed behind vdrep's back (issue 18: "how many blocks
// changed"), a source block that differs from it while the replica still matches it was
// written without the record marking it.
import {HASH_LENGTH, type BlockHasher} from '../hash/block-hash.js'
import {HASHES_PER_PAGE} from '../psf/layout.js'
import type {Bitmap} from '../psf/bitmap.js'
import {BlockKind} from '../protocol/messages.js'
import {SKIP} from '../fullsync/plan.js'
import type {ComparedChunk} from './compare.js'
import {RangeList} from './ranges.js'

const DIFFERS = 1
/** The replica's block is not the index's (the last committed point). */
const REPLICA_MOVED = 2
/** The index says nothing for this block (none valid, a bad page, past its end). */
const NO_INDEX = 4

export const Reason = {
  /** Pending: written since the last push, or in flight. */
  RECORDED: 'recorded',
  /** Pending: not marked yet, but the record is in doubt and the next push checks the disk against the index first. */
  UNVERIFIED: 'unverified',
  /** Unexpected: the replica differs from the last committed point (written outside vdrep). */
  REPLICA_CHANGED: 'replica-changed',
  /** Unexpected: the source differs from the last committed point and the change record does not know. */
  SOURCE_UNRECORDED: 'source-unrecorded',
  /** Unexpected: no valid block hash index to tell which side moved. */
  NO_INDEX: 'no-index',
} as const

export interface IndexView {
  /** The index's hashes (HASH_LENGTH per block), or undefined when it cannot be trusted. */
  hashes: Buffer | undefined
  badPages: readonly number[]
}

export class DifferenceMarks {
  private readonly marks: Uint8Array
  private readonly badPages: Set<number>
  private readonly indexBlocks: number

  constructor(
    readonly blockCount: number,
    private readonly blockSize: number,
    private readonly diskSize: number,
    private readonly hasher: BlockHasher,
    private readonly index: IndexView,
  ) {
    this.marks = new Uint8Array(blockCount)
    this.badPages = new Set(index.badPages)
    this.indexBlocks = index.hashes ? Math.floor(index.hashes.length / HASH_LENGTH) : 0
  }

  /** Record a compared chunk: where it differs, and where the replica is not at the last commit. */
  add(c: ComparedChunk): void {
    const idx = this.index.hashes
    for (let i = 0; i < c.count; i++) {
      const b = c.first + i
      let m = c.action[i] !== SKIP ? DIFFERS : 0
      if (!idx || b >= this.indexBlocks || this.badPages.has(Math.floor(b / HASHES_PER_PAGE))) m |= NO_INDEX
      else {
        const kind = c.theirKinds[i]
        const at = b * HASH_LENGTH
        const rep =
          kind === BlockKind.HASH
            ? c.theirHashes.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH)
            : kind === BlockKind.ZERO
              ? this.hasher.zeroHash(Math.min(this.blockSize, this.diskSize - b * this.blockSize))
              : undefined
        if (!rep || rep.compare(idx, at, at + HASH_LENGTH) !== 0) m |= REPLICA_MOVED
      }
      this.marks[b] = m
    }
  }

  /**
   * Classify, once the pending set is known (`pending`: blocks the record holds as not shipped;
   * `sourceInDoubt`: the record may miss writes that the next push's local check will find).
   */
  classify(pending: Bitmap, sourceInDoubt: boolean): Classified {
    const out: Classified = {
      pending: new RangeList(this.blockSize, this.diskSize),
      unexpected: new RangeList(this.blockSize, this.diskSize),
      replicaChanged: 0,
      replicaUnknown: 0,
    }
    for (let b = 0; b < this.blockCount; b++) {
      const m = this.marks[b]
      const isPending = pending.get(b)
      // The replica against its last committed point: a pending block may be in flight (committed
      // on the replica, the index not updated yet), so only the others count.
      if (m & NO_INDEX) out.replicaUnknown++
      else if (m & REPLICA_MOVED && !isPending) out.replicaChanged++
      if (!(m & DIFFERS)) continue
      if (isPending) out.pending.add(b, Reason.RECORDED)
      else if (m & NO_INDEX) out.unexpected.add(b, Reason.NO_INDEX)
      else if (m & REPLICA_MOVED) out.unexpected.add(b, Reason.REPLICA_CHANGED)
      else if (sourceInDoubt) out.pending.add(b, Reason.UNVERIFIED)
      else out.unexpected.add(b, Reason.SOURCE_UNRECORDED)
    }
    return out
  }
}

export interface Classified {
  pending: RangeList
  unexpected: RangeList
  /** Replica blocks that differ from the last committed point (pending blocks left out). */
  replicaChanged: number
  /** Blocks the index cannot speak for. */
  replicaUnknown: number
}
