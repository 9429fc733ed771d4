// What a full sync compares and sends: the checks before anything is read (a shrunk disk, a
// resize under a tracker, a target that is the source), the checkpoint cadence, where a resumed
// sync starts, and per chunk which blocks are skipped, sent as a zero run or sent as data.
import crypto from 'node:crypto'
import path from 'node:path'
import {UsageError} from '../errors.js'
import {HASH_LENGTH} from '../hash/block-hash.js'
import type {BlockSums} from '../disk/read-hash.js'
import type {PsfHeader} from '../psf/header.js'
import {psfPathFor} from '../psf/psf-file.js'
import {BlockKind, COMMIT_ID_LENGTH, HelloFlag, ReplicaStateKind} from '../protocol/messages.js'
import {DEFAULT_CHECKPOINT_BYTES, MAX_CHECKPOINT_BLOCKS} from '../protocol/flow.js'

export const SKIP = 0
export const ZERO = 1
export const SEND = 2
/** Chunks are checksummed through a mapping (not read) while the last one sent less than this share of its blocks. */
export const MAP_BELOW_SEND_SHARE = 0.25

/** Refusals before anything is read or connected. */
export function checkBeforeSync(disk: string, h: PsfHeader, sourceSize: number, tracked: boolean, truncateReplica: boolean): void {
  if (sourceSize < h.diskSize && !truncateReplica) {
    throw new UsageError('SOURCE_SHRANK', `${disk} is ${sourceSize} bytes, smaller than the ${h.diskSize} bytes recorded at init`, {
      hint: 'a disk that shrank cannot be replicated safely; if this is intended, run `vdrep init --force` and a full sync with --truncate-replica',
    })
  }
  if (tracked && sourceSize !== h.diskSize) {
    throw new UsageError('DISK_RESIZED_WHILE_TRACKED', `${disk} is ${sourceSize} bytes but was ${h.diskSize} when its tracker started`, {
      hint: 'stop `vdrep track` (the .psf is laid out for the old size), run the full sync, then start the tracker again',
    })
  }
}

export function checkTargetNotSource(disk: string, replica: string): void {
  const d = path.resolve(disk)
  const r = path.resolve(replica)
  if (r === d || r === psfPathFor(d) || r.startsWith(`${d}/`)) {
    throw new UsageError('TARGET_IS_SOURCE', `the target ${replica} is the source disk or its state file`, {hint: 'choose a replica path elsewhere'})
  }
}

/** Blocks between checkpoints: capped so every status waited for lies within the receiver's lead (protocol/flow.ts). */
export function checkpointBlocks(checkpointBytes: number | undefined, bs: number): number {
  return Math.min(MAX_CHECKPOINT_BLOCKS, Math.max(1, Math.floor((checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES) / bs)))
}

/** Where the sync starts: the replica's durable resume point when it says it is incomplete. */
export function resumePoint(state: number, resumeBlock: number): number {
  return state === ReplicaStateKind.INCOMPLETE ? resumeBlock : 0
}

/**
 * Decide blocks [from, to) of a chunk: a zero block is skipped where the replica's is zero too
 * and sent as a zero run otherwise; any other is skipped where the replica has its checksum and
 * sent otherwise. Returns how many are to be sent.
 */
export function decideAll(sums: BlockSums, theirKinds: Uint8Array, theirHashes: Buffer, action: Uint8Array, from: number, to: number): number {
  let send = 0
  for (let i = from; i < to; i++) {
    if (sums.zero[i] === 1) action[i] = theirKinds[i] === BlockKind.ZERO ? SKIP : ZERO
    else {
      const at = i * HASH_LENGTH
      const same = theirKinds[i] === BlockKind.HASH && sums.sums.compare(theirHashes, at, at + HASH_LENGTH, at, at + HASH_LENGTH) === 0
      action[i] = same ? SKIP : SEND
      if (!same) send++
    }
  }
  return send
}

/**
 * The share of a chunk's data blocks (not all zero) that travel, which decides whether the next
 * chunk is mapped or read (MAP_BELOW_SEND_SHARE); `previous` when the chunk has no data at all.
 * A chunk of holes sends nothing, but says nothing about the data that follows: judged over all
 * its blocks, a fresh replica of a disk whose data and holes alternate per chunk mapped every
 * data chunk after a hole, then read it again to send it (two passes over half the disk).
 */
export function nextSendShare(previous: number, zero: Uint8Array, count: number, toSend: number): number {
  let data = 0
  for (let i = 0; i < count; i++) if (zero[i] === 0) data++
  return data === 0 ? previous : toSend / data
}

/** The runs [first, end) of blocks to SEND in a chunk's actions. */
export function sendRuns(action: Uint8Array, count: number): Array<[number, number]> {
  const runs: Array<[number, number]> = []
  for (let i = 0; i < count; i++) {
    if (action[i] !== SEND) continue
    const last = runs[runs.length - 1]
    if (last && last[1] === i) last[1] = i + 1
    else runs.push([i, i + 1])
  }
  return runs
}

/**
 * A mapped chunk has no bytes: the blocks that travel were read (fill) and are decided again on
 * what was read (a live disk may have changed them since): what is sent is what is hashed.
 * Returns the merged sums and how many blocks are sent now.
 */
export function redecideFilled(
  sums: BlockSums,
  fresh: BlockSums,
  runs: Array<[number, number]>,
  theirKinds: Uint8Array,
  theirHashes: Buffer,
  action: Uint8Array,
): {sums: BlockSums; toSend: number} {
  const merged = {sums: Buffer.from(sums.sums), zero: Uint8Array.from(sums.zero)}
  let toSend = 0
  for (const [a, z] of runs) {
    merged.zero.set(fresh.zero.subarray(a, z), a)
    fresh.sums.copy(merged.sums, a * HASH_LENGTH, a * HASH_LENGTH, z * HASH_LENGTH)
    toSend += decideAll(merged, theirKinds, theirHashes, action, a, z)
  }
  return {sums: merged, toSend}
}

/** The hello's flags for what the user chose: cut a larger replica, take over another source's, discard a diverged one's changes. */
export function helloFlags(o: {truncateReplica?: boolean; takeOverReplica?: boolean; discardReplicaChanges?: boolean}): number {
  return (
    (o.truncateReplica ? HelloFlag.TRUNCATE_REPLICA : 0) |
    (o.takeOverReplica ? HelloFlag.TAKE_OVER_REPLICA : 0) |
    (o.discardReplicaChanges ? HelloFlag.DISCARD_REPLICA_CHANGES : 0)
  )
}

/** A new commit id: recorded on both sides when the sync it names succeeds. */
export function newCommitId(): Buffer {
  return crypto.randomBytes(COMMIT_ID_LENGTH)
}
