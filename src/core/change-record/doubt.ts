// The one trust rule of the change record: may the bitmaps in this header be taken as the
// complete list of blocks written since the last sync, for the disk as it is now? The answer
// is a typed reason (kind + message), or null. Callers decide on the kind, never on the text.
import {HeaderFlag, type PsfHeader} from '../psf/header.js'
import {recordedStamp, stampDifference, type DiskStamp} from '../psf/disk-stamp.js'
import {IdentityKind} from '../psf/disk-identity.js'

export const DoubtKind = {
  /** NEEDS_FULL_SYNC since init: no proved full sync yet. */
  NEVER_SYNCED: 'never-synced',
  /** NEEDS_FULL_SYNC after a sync: something marked the record untrusted. */
  MARKED_UNTRUSTED: 'marked-untrusted',
  /** NEEDS_FULL_SYNC because `vdrep config` changed the target: a new replica starts with a full sync. */
  TARGET_CHANGED: 'target-changed',
  /** The disk is smaller than the record: nothing may be sent as a delta (bad input). */
  SOURCE_SHRANK: 'source-shrank',
  /** After a clean stop, the disk's stamp moved: something wrote it with no tracker running. */
  WRITTEN_WITHOUT_TRACKER: 'written-without-tracker',
  /** The disk is larger than the record: the record is laid out for the old size. */
  SOURCE_GREW: 'source-grew',
  /**
   * No tracker runs and none stopped cleanly since the record was last complete (a tracker
   * killed, a crash, a .psf restored from a copy taken while a tracker ran): writes made since
   * (after the kill, after the copy) are in no bitmap.
   */
  UNCLEAN_STOP: 'unclean-stop',
  /** VERIFY_NEEDED: a tracker saw another program write the disk, or could not watch for that. */
  VERIFY_NEEDED: 'verify-needed',
  /**
   * A block device with no tracker in front of it: writing it (through a mount, dd) does not
   * move its node's mtime or ctime, so no stamp can tell that it was not written.
   */
  BLOCK_DEVICE_UNWATCHED: 'block-device-unwatched',
} as const
export type DoubtKindId = (typeof DoubtKind)[keyof typeof DoubtKind]

export interface Doubt {
  kind: DoubtKindId
  /** Lower-case, for the summary line: "falling back to a full sync: <message>". */
  message: string
}

export interface DoubtContext {
  /** A tracker runs for the disk now: its bitmaps cover every write since it started. */
  trackerRunning: boolean
}

/**
 * Every reason, most serious first (the first is `doubtOf`'s answer). A tracker that is about to
 * start skips the NEEDS_FULL_SYNC kinds (it records writes before the first sync too).
 */
export function doubtsOf(h: PsfHeader, now: DiskStamp, ctx: DoubtContext): Doubt[] {
  const out: Doubt[] = []
  const flagged = flagDoubt(h)
  if (flagged) out.push(flagged)
  if (now.size < h.diskSize) out.push({kind: DoubtKind.SOURCE_SHRANK, message: `the source disk shrank (${now.size} < ${h.diskSize} bytes)`})
  if (now.size > h.diskSize) {
    out.push({
      kind: DoubtKind.SOURCE_GREW,
      message: ctx.trackerRunning
        ? `the disk grew while a tracker was running (restart \`vdrep track\`): it is ${now.size} bytes but the .psf was made for ${h.diskSize}`
        : `the disk is ${now.size} bytes but the .psf was made for ${h.diskSize}`,
    })
  }
  // Only a record that is otherwise trusted has unmarked writes to look for (a full sync reads
  // everything anyway). After an unclean stop the bitmap holds every write the tracker made, but
  // not a write made after the kill or after a copy of the .psf was taken; after a clean stop
  // the disk must still carry the stamp recorded then, and a block device carries none.
  if (!flagged && !ctx.trackerRunning) {
    if (h.flags & HeaderFlag.VERIFY_NEEDED) {
      out.push({kind: DoubtKind.VERIFY_NEEDED, message: 'the tracker saw another program write the disk, or could not watch for that'})
    }
    if (!(h.flags & HeaderFlag.CLEAN_SHUTDOWN)) {
      out.push({
        kind: DoubtKind.UNCLEAN_STOP,
        message: 'no tracker stopped cleanly since the record was last complete (a tracker killed, a crash, or a .psf restored from a copy)',
      })
    } else {
      const diff = stampDifference(recordedStamp(h), now)
      if (diff) out.push({kind: DoubtKind.WRITTEN_WITHOUT_TRACKER, message: `the disk was written while no tracker ran (${diff} since the tracker stopped)`})
    }
    if (h.identity.kind === IdentityKind.BLOCK_DEVICE) {
      out.push({kind: DoubtKind.BLOCK_DEVICE_UNWATCHED, message: 'a block device was not watched by a tracker since the record was last complete'})
    }
  } else if (!flagged && h.flags & HeaderFlag.VERIFY_NEEDED) {
    out.push({kind: DoubtKind.VERIFY_NEEDED, message: 'the tracker saw another program write the disk'})
  }
  return out
}

/** The reason the header itself gives (NEEDS_FULL_SYNC), whatever the disk looks like; or null. */
export function flagDoubt(h: PsfHeader): Doubt | null {
  if (!(h.flags & HeaderFlag.NEEDS_FULL_SYNC)) return null
  if (h.flags & HeaderFlag.TARGET_CHANGED)
    return {kind: DoubtKind.TARGET_CHANGED, message: `the target changed to ${h.settings.target} (vdrep config): a new replica starts with a full sync`}
  return h.generation === 0
    ? {kind: DoubtKind.NEVER_SYNCED, message: 'no full sync has completed since init'}
    : {kind: DoubtKind.MARKED_UNTRUSTED, message: 'the change record was marked untrusted'}
}

/** Why the change record cannot be trusted for a delta of the disk as it is now, or null. */
export function doubtOf(h: PsfHeader, now: DiskStamp, ctx: DoubtContext): Doubt | null {
  return doubtsOf(h, now, ctx)[0] ?? null
}

/**
 * The kinds a local verification cures: every block is hashed and compared with the block hash
 * index of the last sync, the differing ones are marked, and the record is complete again.
 */
export function curedByVerification(d: Doubt): boolean {
  return (
    d.kind === DoubtKind.UNCLEAN_STOP ||
    d.kind === DoubtKind.VERIFY_NEEDED ||
    d.kind === DoubtKind.WRITTEN_WITHOUT_TRACKER ||
    d.kind === DoubtKind.BLOCK_DEVICE_UNWATCHED
  )
}

/** A verification can run: the index is that of the last proved sync and no full sync is pending. */
export function canVerify(h: PsfHeader): boolean {
  return (h.flags & HeaderFlag.INDEX_VALID) !== 0 && (h.flags & HeaderFlag.NEEDS_FULL_SYNC) === 0
}

/** The kinds that only a full sync cures (NEEDS_FULL_SYNC); the others concern the disk itself. */
export function needsFullSyncFlag(d: Doubt): boolean {
  return d.kind === DoubtKind.NEVER_SYNCED || d.kind === DoubtKind.MARKED_UNTRUSTED || d.kind === DoubtKind.TARGET_CHANGED
}
