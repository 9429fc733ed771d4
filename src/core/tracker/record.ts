// Opening a disk's change record for a tracker or a scan, as its owner: both locks first (the
// .psf's flock, held for the whole run, and the push lock, held until a tracker's control
// socket answers, so no push or full sync writes the record meanwhile), then the .psf, checked
// and wrapped in errors that say a full sync is needed when it cannot be used.
import fs from 'node:fs/promises'
import path from 'node:path'
import {FullSyncNeededError, StateError, UsageError, VdrepError} from '../errors.js'
import {BITS_PER_PAGE} from '../psf/layout.js'
import {PsfFile, psfPathFor} from '../psf/psf-file.js'
import {ChangeRecord} from '../change-record/change-record.js'
import {checkRecordIdentity} from '../change-record/identity.js'
import {canVerify, curedByVerification, DoubtKind, needsFullSyncFlag} from '../change-record/doubt.js'
import type {Bitmap} from '../psf/bitmap.js'
import {logCover} from './log-cover.js'
import {HeaderFlag} from '../psf/header.js'
import {stampOf} from '../psf/disk-stamp.js'
import {canonicalDisk} from './paths.js'
import {acquireDiskLock, TrackerLock, type HeldLock} from '../locks/index.js'

export interface OpenRecord {
  /** Absolute path as given (the .psf sits beside it, as `init` put it). */
  disk: string
  /** Symlinks resolved: names the control socket. */
  canonical: string
  psfPath: string
  /** Owned: this process is the record's only writer while it holds `lock`. */
  record: ChangeRecord
  lock: TrackerLock
  /** The disk lock, held so no push edits the .psf meanwhile; release it when done starting. */
  diskLock: HeldLock
  /** Said once when a format-1 record was bound to its disk now, else null. */
  bound: string | null
}

/** A .psf that cannot be used, as the error `track`/`--scan` report: a full sync is needed. */
export function recordUnusable(disk: string, err: unknown): VdrepError {
  const e = err as VdrepError
  const missing = e?.code === 'PSF_MISSING'
  if (!(err instanceof StateError))
    return err instanceof VdrepError ? err : new StateError('PSF_UNREADABLE', String((err as Error)?.message ?? err), {cause: err})
  return new FullSyncNeededError(`cannot track ${disk}: ${e.message}; the change record cannot be trusted and a full sync is needed`, {
    cause: err,
    hint: missing
      ? `run \`vdrep init ${disk} --to <target>\` and \`vdrep fullsync ${disk}\` first`
      : `run \`vdrep init --force ${disk} --to <target>\` and then \`vdrep fullsync ${disk}\``,
  })
}

/**
 * Lock the disk for `what` ("tracker", "scan"), take the ownership of its .psf, then open it:
 * in the order of locks/index.ts (disk lock first). Both locks are held on return.
 */
export async function openRecord(diskArg: string, what: string): Promise<OpenRecord> {
  const disk = path.resolve(diskArg)
  const st = await fs.stat(disk).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new UsageError('DISK_MISSING', `no such disk: ${disk}`)
    throw new UsageError('DISK_UNREADABLE', `cannot read ${disk}: ${err.message}`)
  })
  if (!st.isFile() && !st.isBlockDevice()) throw new UsageError('DISK_NOT_A_DISK', `${disk} is neither a regular file nor a block device`)
  const canonical = await canonicalDisk(disk)
  const psfPath = psfPathFor(disk)
  const diskLock = await acquireDiskLock(disk, what)
  let lock: TrackerLock | undefined
  try {
    try {
      lock = await TrackerLock.acquire(canonical, psfPath, what)
    } catch (err) {
      // A missing or unreadable .psf says so better than a failed lock.
      if (((err as VdrepError).cause as NodeJS.ErrnoException | undefined)?.code) {
        const psf = await PsfFile.open(psfPath, false).catch((e: unknown) => {
          throw recordUnusable(disk, e)
        })
        await psf.close()
      }
      throw err
    }
    const record = await ChangeRecord.openOwned(psfPath).catch((e: unknown) => {
      throw recordUnusable(disk, e)
    })
    // Whose record: a clone or a swapped .psf is refused as it is (not as a full sync needed).
    let bound: string | null
    try {
      bound = await checkRecordIdentity(record, disk, {trackerRunning: false})
    } catch (err) {
      await record.close().catch(() => {})
      throw err
    }
    return {disk, canonical, psfPath, record, lock, diskLock, bound}
  } catch (err) {
    lock?.release()
    await diskLock.release()
    throw err
  }
}

/** The warning for a bitmap page that failed its CRC. */
export function badPageWarning(psfPath: string, region: string, page: number, blockCount: number): string {
  const first = page * BITS_PER_PAGE
  const last = Math.min(blockCount, first + BITS_PER_PAGE) - 1
  return `page ${page} of the ${region} bitmap in ${psfPath} failed its checksum: blocks ${first}..${last} are marked changed (the next push sends them)`
}

/** A check a starting tracker runs behind its export: why, and which blocks (null: every one). */
export interface StartCheck {
  reason: string
  blocks: Bitmap | null
}

/**
 * What a starting tracker must do about doubt on its record: null (trusted), or the check of
 * the disk against the block hash index to run behind the export. After an unclean stop alone,
 * the activity log narrows it to the unmarked blocks of its hot extents when it can vouch
 * (log-cover.ts); any other doubt checks every block. A doubt no check cures (the disk changed
 * size) refuses; with no index to check against, the record is marked for a full sync (the
 * tracker still records writes).
 */
export async function verificationAtStart(record: ChangeRecord, disk: string, say: (level: 'warn' | 'info', line: string) => void): Promise<StartCheck | null> {
  const h = record.header
  // A tracker records writes before the first full sync too: only doubt about the disk stops
  // it, and a doubt a local verification cures does not (the check runs behind the export).
  const stamp = await stampOf(disk)
  const doubts = record.doubts(stamp, {trackerRunning: false}).filter((d) => !needsFullSyncFlag(d))
  const refusal = doubts.find((d) => !curedByVerification(d))
  if (refusal) {
    throw new FullSyncNeededError(`cannot track ${disk}: ${refusal.message}; the change record does not cover the disk as it is now`, {
      hint: `run \`vdrep init --force ${disk} --to <target>\` and \`vdrep fullsync ${disk}\``,
    })
  }
  const why = doubts.length > 0 ? doubts.map((d) => d.message).join('; ') : null
  if (why && !canVerify(h)) {
    // No index to check against (a full sync never finished): only a full sync can vouch.
    if (!(h.flags & HeaderFlag.NEEDS_FULL_SYNC)) await record.markUntrusted()
    say('warn', `${why}; with no block hash index to check against, the next push is a full sync`)
    return null
  }
  if (why === null) return null
  if (doubts.length === 1 && doubts[0].kind === DoubtKind.UNCLEAN_STOP) {
    const maps = await record.bitmaps()
    const cover = await logCover(record, stamp, maps.active, maps.inflight)
    if (typeof cover !== 'string') {
      const n = cover.blocks.count()
      if (n === 0) {
        say('info', `${why}; the activity log vouches for every block (${cover.hotExtents} hot extents, all marked or untouched): nothing to check`)
        return null
      }
      return {reason: `${why}; the activity log narrows the check to ${n} unmarked blocks of its ${cover.hotExtents} hot extents`, blocks: cover.blocks}
    }
    return {reason: `${why}; the activity log cannot narrow the check: ${cover}`, blocks: null}
  }
  return {reason: why, blocks: null}
}
