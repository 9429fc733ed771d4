// Whose record is this? A .psf records the disk it belongs to (psf/disk-identity.ts); before a
// push, a full sync, a tracker or a scan trusts it, the disk in front of it must be that disk.
// This is not a doubt (doubt.ts): a doubt turns a push into a full sync over the replica, and a
// clone or a swapped .psf must never write the replica the record names. It is a refusal.
//
// A format-1 record (no identity) is bound to the disk in front of it only when the record is
// otherwise trusted and carries that disk's own clean point: CLEAN_SHUTDOWN, no full sync
// pending, and the disk's size, mtime and ctime exactly as recorded. `cp -a` cannot keep a
// ctime, and a .psf copied from another disk records that disk's stamp, so neither binds.
// Anything else is refused (PSF_UNBOUND) until `vdrep init --force`.
import type {BigIntStats} from 'node:fs'
import {StateError} from '../errors.js'
import {HeaderFlag, type PsfHeader} from '../psf/header.js'
import {recordedStamp, stampDifference, stampOf, type DiskStamp} from '../psf/disk-stamp.js'
import {describeIdentity, identityFromStat, identityOf, IdentityKind, sameDisk, type DiskIdentity} from '../psf/disk-identity.js'
import {psfPathFor} from '../psf/psf-file.js'
import type {ChangeRecord} from './change-record.js'

export type IdentityVerdict =
  | {kind: 'same'}
  /** A format-1 record that is provably this disk's: record the identity now. */
  | {kind: 'bind'}
  | {kind: 'refused'; error: StateError}

export interface IdentityContext {
  /** A tracker runs: it bound the record to the inode it opened at its start. */
  trackerRunning: boolean
}

/** The one identity rule: may this record be used for the disk in front of it? */
export function identityVerdict(h: PsfHeader, disk: string, now: DiskIdentity, stamp: DiskStamp, ctx: IdentityContext): IdentityVerdict {
  const psf = psfPathFor(disk)
  if (h.identity.kind === IdentityKind.NONE) {
    const why = unboundReason(h, stamp)
    if (!why) return {kind: 'bind'}
    return {
      kind: 'refused',
      error: new StateError(
        'PSF_UNBOUND',
        `${psf} was written by an older vdrep (format 1) and does not record which disk it belongs to; it cannot be shown to be ${disk}'s (${why}); nothing was sent`,
        {
          hint: `if ${disk} is the disk this record was made for, run \`vdrep init --force ${disk} --to <target>\` and \`vdrep fullsync ${disk}\`; if it is a copy of another disk, give it its own target`,
        },
      ),
    }
  }
  if (sameDisk(h.identity, now)) return {kind: 'same'}
  const made = `it was made for ${h.identity.path || 'another disk'} (${describeIdentity(h.identity)})`
  const message = ctx.trackerRunning
    ? `${disk} was replaced while its tracker runs: the path now names ${describeIdentity(now)}, but the tracker and ${psf} record ${describeIdentity(h.identity)}; nothing was sent`
    : `${psf} belongs to another disk: ${made}, but ${disk} is ${describeIdentity(now)} (a copy of the disk, or a .psf copied from another disk); nothing was sent`
  return {
    kind: 'refused',
    error: new StateError('PSF_NOT_THIS_DISK', message, {
      hint: ctx.trackerRunning
        ? `stop \`vdrep track\`, put the original disk back, or run \`vdrep init --force ${disk} --to <target>\` for the new one`
        : `a copy needs its own record and its own replica: run \`vdrep init --force ${disk} --to <new target>\`; the original's replica was not touched`,
    }),
  }
}

/** Why a format-1 record cannot be bound to the disk with this stamp, or null. */
function unboundReason(h: PsfHeader, stamp: DiskStamp): string | null {
  if (h.flags & HeaderFlag.NEEDS_FULL_SYNC) return 'it awaits a full sync'
  if (!(h.flags & HeaderFlag.CLEAN_SHUTDOWN)) return 'it records no clean stop of a tracker'
  const diff = stampDifference(recordedStamp(h), stamp)
  return diff ? `the disk does not carry the record's clean point: ${diff}` : null
}

/**
 * Check the record against what `disk` names now; bind a provable format-1 record (only its
 * owner writes: a read-only record is left as it is). Throws the refusal.
 * Returns a note to log when it bound the record, else null.
 */
export async function checkRecordIdentity(record: ChangeRecord, disk: string, ctx: IdentityContext): Promise<string | null> {
  const [now, stamp] = await Promise.all([identityOf(disk), stampOf(disk)])
  const v = identityVerdict(record.header, disk, now, stamp, ctx)
  if (v.kind === 'refused') throw v.error
  if (v.kind === 'bind' && record.writable) {
    await record.bindIdentity(now)
    return `${record.path} (format 1) now records its disk (${describeIdentity(now)})`
  }
  return null
}

/**
 * The disk as opened (fstat of the handle that is read) is the one the record names: the path
 * may have been swapped between the check and the open. A record left unbound (format 1, read
 * by a process that does not own it) has nothing to compare.
 */
export function checkOpenedDisk(record: ChangeRecord, disk: string, st: BigIntStats, size: number, ctx: IdentityContext): void {
  const h = record.header
  if (h.identity.kind === IdentityKind.NONE) return
  const opened = identityFromStat(st, h.identity.path, size)
  if (sameDisk(h.identity, opened)) return
  const v = identityVerdict(h, disk, opened, recordedStamp(h), ctx)
  if (v.kind === 'refused') throw v.error
}
