// The header fields each commit-chain transition of the change record writes, as pure
// functions of the header before it (change-record.ts applies them, one header write each):
// kept apart so the rules about which flags a commit, a rebind or a proved sync clears read in
// one place.
import {HeaderFlag, type PsfHeader} from '../psf/header.js'
import type {DiskStamp} from '../psf/disk-stamp.js'
import type {ReplicationSettings} from '../psf/settings.js'
import type {CommitRecord, ProvedSync} from './writer.js'

/** The replica host's refusals kept for `status`, and the hand-over mark: a commit or a new binding ends them. */
const REFUSALS = HeaderFlag.REPLICA_DIVERGED | HeaderFlag.REPLICA_FOREIGN | HeaderFlag.REPLICA_PROMOTED | HeaderFlag.HANDED_OVER

export function stampFields(s: DiskStamp): Pick<PsfHeader, 'sourceSize' | 'sourceMtimeNs' | 'sourceCtimeNs'> {
  return {sourceSize: s.size, sourceMtimeNs: s.mtimeNs, sourceCtimeNs: s.ctimeNs}
}

/**
 * The replica committed `c.seq`. With a stamp (no tracker ran), CLEAN_SHUTDOWN is set with it:
 * after a tracker died the pushes that follow check for outside writes again, not never. The
 * replica took this commit: no longer refused; handed over only if this one was final.
 */
export function commitFields(h: PsfHeader, c: CommitRecord): Partial<PsfHeader> {
  return {
    lastSeq: c.seq,
    pendingSeq: 0,
    lastSyncMs: c.pointInTimeMs,
    diskSize: c.diskSize,
    lastCommit: c.commitId,
    flags: ((c.stamp ? h.flags | HeaderFlag.CLEAN_SHUTDOWN : h.flags) & ~REFUSALS) | (c.final ? HeaderFlag.HANDED_OVER : 0),
    ...(c.stamp ? stampFields(c.stamp) : {}),
  }
}

/**
 * A target naming another replica: the binding is reset (a new replica id, no sequence, no
 * commit chain) and the next sync is a full sync that says why (TARGET_CHANGED).
 */
export function rebindFields(h: PsfHeader, settings: ReplicationSettings, replicaId: Buffer): Partial<PsfHeader> {
  return {
    settings,
    replicaId: Buffer.from(replicaId),
    lastSeq: 0,
    pendingSeq: 0,
    lastCommit: Buffer.alloc(16),
    flags: (h.flags | HeaderFlag.NEEDS_FULL_SYNC | HeaderFlag.TARGET_CHANGED) & ~HeaderFlag.INDEX_VALID & ~REFUSALS,
  }
}

/** A full sync's proof passed: generation + 1, the replica's sequence adopted, the index trusted, NEEDS_FULL_SYNC gone. */
export function provedFields(h: PsfHeader, p: ProvedSync): Partial<PsfHeader> & {flags: number} {
  const flags =
    (h.flags | HeaderFlag.INDEX_VALID | (p.stamp ? HeaderFlag.CLEAN_SHUTDOWN : 0)) &
    // Without a tracker the sync read the disk after any outside write a tracker saw before;
    // a running tracker keeps the flag until its own verification ends.
    ~(
      HeaderFlag.NEEDS_FULL_SYNC |
      HeaderFlag.TARGET_CHANGED |
      HeaderFlag.REPLICA_DIVERGED |
      HeaderFlag.REPLICA_FOREIGN |
      (p.stamp ? HeaderFlag.VERIFY_NEEDED : 0)
    )
  return {
    flags,
    generation: h.generation + 1,
    lastCommit: p.commitId,
    lastSyncMs: p.syncedMs,
    diskSize: p.diskSize,
    lastSeq: p.replicaSeq,
    pendingSeq: 0,
    ...(p.stamp ? stampFields(p.stamp) : {}),
  }
}
