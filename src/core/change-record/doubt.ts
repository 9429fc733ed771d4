// The one trust rule of the change record: may the bitmaps in this header be taken as the
// complete list of blocks written since the last sync, for the disk as it is now? The answer
// is a typed reason (kind + message), or null. Callers decide on the kind, never on the text.
import {HeaderFlag, type PsfHeader} from '../psf/header.js'
import {recordedStamp, stampDifference, type DiskStamp} from '../psf/disk-stamp.js'

export const DoubtKind = {
  /** NEEDS_FULL_SYNC since init: no proved full sync yet. */
  NEVER_SYNCED: 'never-synced',
  /** NEEDS_FULL_SYNC after a sync: something marked the record untrusted. */
  MARKED_UNTRUSTED: 'marked-untrusted',
  /** The disk is smaller than the record: nothing may be sent as a delta (bad input). */
  SOURCE_SHRANK: 'source-shrank',
  /** After a clean stop, the disk's stamp moved: something wrote it with no tracker running. */
  WRITTEN_WITHOUT_TRACKER: 'written-without-tracker',
  /** The disk is larger than the record: the record is laid out for the old size. */
  SOURCE_GREW: 'source-grew',
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
  // After an unclean stop (kill -9, crash) the bitmap holds every write the tracker made and is
  // trusted; after a clean stop the disk must still carry the stamp recorded then.
  if (!ctx.trackerRunning && h.flags & HeaderFlag.CLEAN_SHUTDOWN) {
    const diff = stampDifference(recordedStamp(h), now)
    if (diff) out.push({kind: DoubtKind.WRITTEN_WITHOUT_TRACKER, message: `the disk was written while no tracker ran (${diff} since the tracker stopped)`})
  }
  if (now.size > h.diskSize) {
    out.push({
      kind: DoubtKind.SOURCE_GREW,
      message: ctx.trackerRunning
        ? `the disk grew while a tracker was running (restart \`vdrep track\`): it is ${now.size} bytes but the .psf was made for ${h.diskSize}`
        : `the disk is ${now.size} bytes but the .psf was made for ${h.diskSize}`,
    })
  }
  return out
}

/** The reason the header itself gives (NEEDS_FULL_SYNC), whatever the disk looks like; or null. */
export function flagDoubt(h: PsfHeader): Doubt | null {
  if (!(h.flags & HeaderFlag.NEEDS_FULL_SYNC)) return null
  return h.generation === 0
    ? {kind: DoubtKind.NEVER_SYNCED, message: 'no full sync has completed since init'}
    : {kind: DoubtKind.MARKED_UNTRUSTED, message: 'the change record was marked untrusted'}
}

/** Why the change record cannot be trusted for a delta of the disk as it is now, or null. */
export function doubtOf(h: PsfHeader, now: DiskStamp, ctx: DoubtContext): Doubt | null {
  return doubtsOf(h, now, ctx)[0] ?? null
}

/** The kinds that only a full sync cures (NEEDS_FULL_SYNC); the others concern the disk itself. */
export function needsFullSyncFlag(d: Doubt): boolean {
  return d.kind === DoubtKind.NEVER_SYNCED || d.kind === DoubtKind.MARKED_UNTRUSTED
}
