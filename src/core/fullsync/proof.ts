// What a full sync's proof rests on and what it records: the block hash index written as the
// sync goes (through the record's owner: the tracker, or this process), the whole-disk digest
// compared with the replica's, and, only once that proof passed, the proved-sync transition of
// the change record. Nothing is trusted before the proof: the index loses INDEX_VALID first.
import {VerifyError} from '../errors.js'
import {HASH_LENGTH} from '../hash/block-hash.js'
import {HASHES_PER_PAGE} from '../psf/layout.js'
import type {DiskStamp} from '../psf/disk-stamp.js'
import type {VerifyResult} from '../protocol/messages.js'
import {requireOwned, type RecordClaim} from '../change-record/claim.js'

/** Index pages written at a time (8128 blocks). */
const INDEX_BATCH_PAGES = 64

/**
 * The index as the sync computes it, block by block in order. Same layout: written in batches
 * of whole pages as it goes. A disk that grew: kept whole, for the new layout the proof writes.
 */
export class IndexRecorder {
  /** The whole index (a disk that grew), else undefined. */
  readonly whole: Buffer | undefined
  private readonly batch = Buffer.alloc(INDEX_BATCH_PAGES * HASHES_PER_PAGE * HASH_LENGTH)
  private batchStart = 0

  constructor(
    private readonly claim: RecordClaim,
    private readonly blockCount: number,
    resized: boolean,
  ) {
    this.whole = resized ? Buffer.alloc(blockCount * HASH_LENGTH) : undefined
  }

  /** Until the proof passes the index must not be trusted. */
  async begin(): Promise<void> {
    if (!this.whole) await this.claim.writer.beginFullSync()
  }

  /** The hashes (`slots`, HASH_LENGTH each) of blocks [first, end), in order. */
  async add(first: number, end: number, slots: Buffer): Promise<void> {
    if (this.whole) {
      slots.copy(this.whole, first * HASH_LENGTH)
      return
    }
    const per = INDEX_BATCH_PAGES * HASHES_PER_PAGE
    for (let b = first; b < end;) {
      const upto = Math.min(end, this.batchStart + per)
      slots.copy(this.batch, (b - this.batchStart) * HASH_LENGTH, (b - first) * HASH_LENGTH, (upto - first) * HASH_LENGTH)
      if (upto === this.batchStart + per || upto === this.blockCount) {
        await this.claim.writer.writeIndexRun(this.batchStart, this.batch.subarray(0, (upto - this.batchStart) * HASH_LENGTH))
        this.batchStart = upto
      }
      b = upto
    }
  }
}

export function checkVerdict(verdict: VerifyResult, ourDigest: Buffer): void {
  if (verdict.ok) return
  throw new VerifyError(
    `the replica's digest ${verdict.digest.toString('hex').slice(0, 16)}… does not match the source's ${ourDigest.toString('hex').slice(0, 16)}…; the replica stays marked incomplete`,
    {
      hint: "run `vdrep fullsync` again; if it fails again, check the replica host's storage",
    },
  )
}

/**
 * The proof passed: the proved-sync transition. Without a tracker (`stamp`), the disk's stamp
 * at the start becomes the clean point and the bitmaps are cleared; with one, the caller then
 * completes the tracker's freeze, which clears what the sync proved. The replica's push sequence (`replicaSeq`, from its
 * HELLO_OK; nothing else wrote it during the session, which held the replica) becomes this
 * disk's: without it, a .psf whose record fell behind the replica's (restored from a backup,
 * re-made with `init --force`, a push whose answer was lost) would be told "sequence mismatch,
 * full sync needed" by every push after the full sync meant to cure it.
 */
export async function recordProof(
  claim: RecordClaim,
  index: IndexRecorder,
  p: {diskSize: number; replicaSeq: number; commitId: Buffer; stamp?: DiskStamp},
): Promise<void> {
  const proved = {diskSize: p.diskSize, replicaSeq: p.replicaSeq, syncedMs: Date.now(), commitId: p.commitId, stamp: p.stamp}
  if (index.whole) {
    // The disk grew (never under a tracker: checkBeforeSync refuses): a new layout.
    await requireOwned(claim, 'cannot lay out the record for the grown disk').provedSyncResized({...proved, index: index.whole})
    return
  }
  await claim.writer.provedSync(proved)
}
