// `vdrep verify <disk>`: both sides checksum every block (the source here, the replica on the
// replica host through its receiver), nothing is written anywhere (look.ts), and every
// difference is sorted (classify.ts): pending (the change record holds the block as not
// shipped yet: written since the last push, or in flight) or unexpected (the replica moved
// behind vdrep's back, or the source did without the record knowing, or nothing can tell).
// Only unexpected differences fail. On a live tracked disk the tracker's pending set is taken
// before and after the comparison: a write lands in the bitmap before it lands on the disk
// (tracker/dirty-log.ts), so any block read with new contents is in the set taken after it.
import {canVerify, curedByVerification} from '../change-record/doubt.js'
import {blockHasher} from '../hash/block-hash.js'
import {Bitmap} from '../psf/bitmap.js'
import {stampOf} from '../psf/disk-stamp.js'
import {HelloFlag, ReplicaStateKind} from '../protocol/messages.js'
import type {BlockRange} from './ranges.js'
import {DifferenceMarks, type IndexView} from './classify.js'
import {lookAtReplica, type Looking, type LookOptions} from './look.js'

export type VerifyOptions = LookOptions

export interface RangeSet {
  blocks: number
  bytes: number
  ranges: BlockRange[]
  truncated: boolean
}

export interface VerifyResult {
  disk: string
  target: string
  /** The replica equals the source, every block. */
  equal: boolean
  /** `equal`; `pending`: differences, all of them expected; `failed`: some are unexpected (exit VERIFY_FAILED). */
  verdict: 'equal' | 'pending' | 'failed'
  blockSize: number
  blocksCompared: number
  bytesCompared: number
  /** Expected differences: the change record holds these blocks as not shipped (or to be checked by the next push). */
  pending: RangeSet
  /** Differences nothing explains. */
  unexpected: RangeSet
  /**
   * The replica against the last committed point the client shipped (its block hash index):
   * how many of its blocks differ from it (pending blocks left out), or null when the index
   * cannot tell (no proved sync, a full sync pending, a damaged page).
   */
  replicaChangedBlocks: number | null
  replicaAtLastCommit: boolean | null
  replicaState: 'missing' | 'incomplete' | 'complete'
  replicaSeq: number
  recordSeq: number
  /** A tracker runs: the pending set came from it (before and after the comparison). */
  tracked: boolean
  sourceDigest: string
  replicaDigest: string
  seconds: number
}

const STATE_NAMES = {[ReplicaStateKind.MISSING]: 'missing', [ReplicaStateKind.INCOMPLETE]: 'incomplete', [ReplicaStateKind.COMPLETE]: 'complete'} as const

export async function verify(disk: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const started = performance.now()
  let marks: DifferenceMarks | undefined
  let before: Bitmap | undefined
  return lookAtReplica(disk, opts, {
    // A replica that moved on is what a verify is for: it compares (and counts) instead of refusing.
    flags: HelloFlag.DISCARD_REPLICA_CHANGES,
    before: async (l) => {
      const h = l.record.header
      const blockCount = Math.ceil(l.diskSize / h.blockSize)
      before = (await pendingNow(l, blockCount)).bitmap
      const index: IndexView = canVerify(h) ? await l.record.readIndex() : {hashes: undefined, badPages: []}
      marks = new DifferenceMarks(blockCount, h.blockSize, l.diskSize, blockHasher(h.hashAlgo, h.replicaId), index)
    },
    onChunk: (c) => marks?.add(c),
    after: async (l, outcome) => {
      const h = l.record.header
      const m = marks as DifferenceMarks
      const after = await pendingNow(l, m.blockCount)
      const pending = before as Bitmap
      pending.merge(after.bitmap)
      const cls = m.classify(pending, after.verifying || (await sourceInDoubt(disk, l)))
      const indexSpeaks = cls.replicaUnknown === 0
      return {
        disk,
        target: h.settings.target,
        equal: outcome.differing === 0,
        verdict: cls.unexpected.blocks > 0 ? 'failed' : outcome.differing > 0 ? 'pending' : 'equal',
        blockSize: h.blockSize,
        blocksCompared: m.blockCount,
        bytesCompared: l.diskSize,
        pending: cls.pending.toJSON(),
        unexpected: cls.unexpected.toJSON(),
        replicaChangedBlocks: indexSpeaks ? cls.replicaChanged : null,
        replicaAtLastCommit: indexSpeaks ? cls.replicaChanged === 0 && outcome.hello.lastSeq === h.lastSeq : null,
        replicaState: STATE_NAMES[outcome.hello.state as keyof typeof STATE_NAMES] ?? 'incomplete',
        replicaSeq: outcome.hello.lastSeq,
        recordSeq: h.lastSeq,
        tracked: l.tracker !== null,
        sourceDigest: outcome.sourceDigest,
        replicaDigest: outcome.replicaDigest,
        seconds: (performance.now() - started) / 1000,
      }
    },
  })
}

/**
 * The blocks the record holds as not shipped (active | in-flight), for `blockCount` blocks:
 * from the running tracker (read-only), else from the .psf. Blocks past the record's end (a
 * disk that grew) count as pending: the next sync ships them. A bitmap page that failed its
 * checksum reads as all dirty (psf/psf-file.ts), so it errs toward pending.
 */
async function pendingNow(l: Looking, blockCount: number): Promise<{bitmap: Bitmap; verifying: boolean}> {
  let src: Bitmap
  let verifying = false
  if (l.tracker) {
    const p = await l.tracker.pending()
    src = p.bitmap
    verifying = p.verifying
  } else {
    const maps = await l.record.bitmaps()
    src = new Bitmap(maps.active.blockCount, Uint8Array.from(maps.active.bits))
    src.merge(maps.inflight)
  }
  const out = new Bitmap(blockCount)
  out.merge(src)
  if (src.blockCount < blockCount) out.setRange(src.blockCount, blockCount - src.blockCount)
  return {bitmap: out, verifying}
}

/** The record may miss writes that a push would first look for (a local check against the index): such differences are pending. */
async function sourceInDoubt(disk: string, l: Looking): Promise<boolean> {
  const doubts = l.record.doubts(await stampOf(disk), {trackerRunning: l.tracker !== null})
  return doubts.some(curedByVerification)
}
