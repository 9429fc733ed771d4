// `vdrep status`: one row per disk, built from its .psf and, when a tracker runs, from the
// tracker's control socket (live counts). Never changes anything. Push work extends the rows
// (RPO age and violation, --check); keep every decision about a row in this file.
import {compressText} from '../compress/policy.js'
import {identityVerdict} from '../change-record/identity.js'
import {identityOf} from '../psf/disk-identity.js'
import fs from 'node:fs/promises'
import path from 'node:path'
import {asVdrepError, type StateError, type VdrepError} from '../errors.js'
import {HeaderFlag} from '../psf/header.js'
import {psfPathFor} from '../psf/psf-file.js'
import {disksInStateFolder} from '../psf/state-location.js'
import {TrackerControlClient, type TrackerStatus} from '../tracker/control-client.js'
import {stampOf} from '../psf/disk-stamp.js'
import {ChangeRecord} from '../change-record/change-record.js'
import {curedByVerification, DoubtKind, flagDoubt, type Doubt} from '../change-record/doubt.js'
import {bytesCovered, unionOf} from '../change-record/moves.js'
import {formatDuration} from '../util/units.js'
import {readReplicaState} from '../receiver/replica-state.js'
import {readLastAttempt, type LastAttempt} from './last-attempt.js'
import {emptyRow, type DiskState, type DiskStatusRow} from './row.js'

export type {DiskState, DiskStatusRow, TrackerSummary} from './row.js'

export interface StatusOptions {
  /** How long a tracker gets to answer. Default 2 s. */
  trackerTimeoutMs?: number
  now?: number
}

function errorOf(err: unknown): {code: string; message: string; hint?: string} {
  const e: VdrepError = asVdrepError(err)
  return {code: e.code, message: e.message, ...(e.hint ? {hint: e.hint} : {})}
}

/** Ask a running tracker; null when none answers (or it does not answer in time). */
async function askTracker(disk: string, timeoutMs: number): Promise<TrackerStatus | null> {
  const c = await TrackerControlClient.tryConnect(disk, {timeoutMs}).catch(() => null)
  if (!c) return null
  try {
    return await c.status()
  } catch {
    return null
  } finally {
    await c.close()
  }
}

/** A row's state and reason for a disk no tracker runs for, from the record's doubt. */
function untrackedReason(d: Doubt | null): {state: DiskState; reason: string | null} {
  if (!d) return {state: 'Not tracking', reason: null}
  switch (d.kind) {
    case DoubtKind.SOURCE_SHRANK:
      return {state: 'Full sync needed', reason: d.message}
    case DoubtKind.SOURCE_GREW:
      return {state: 'Not tracking', reason: 'the disk grew; the next push marks the new blocks'}
    default:
      return curedByVerification(d)
        ? {
            state: 'Verify pending',
            reason: `${d.message}; the next push (or \`vdrep track\`) first checks every block against the block hash index (a local read)`,
          }
        : {state: 'Full sync needed', reason: d.message}
  }
}

export async function diskStatus(diskArg: string, opts: StatusOptions = {}): Promise<DiskStatusRow> {
  const disk = path.resolve(diskArg)
  const row = emptyRow(disk)
  const now = opts.now ?? Date.now()
  let record: ChangeRecord
  try {
    record = await ChangeRecord.openReadOnly(psfPathFor(disk))
  } catch (err) {
    row.error = errorOf(err)
    // A corrupt or foreign .psf is what a full sync (after `init --force`) cures; a .psf that
    // cannot be read at all (permissions, I/O) is an error of its own.
    const missing = row.error.code === 'PSF_MISSING'
    row.state = missing || row.error.code === 'PSF_UNREADABLE' ? 'Error' : 'Full sync needed'
    row.reason = missing ? `not initialised: no .psf at ${psfPathFor(disk)} (run \`vdrep init\`)` : `the .psf cannot be used: ${row.error.message}`
    return row
  }
  try {
    const h = record.header
    row.target = h.settings.target
    row.group = h.settings.group ?? null
    row.blockSize = h.blockSize
    // A format 1 or 2 record (read-only here) gets the default log when its owner next opens it.
    row.activityLog = h.alExtents > 0 ? {extents: h.alExtents, extentBytes: 2 ** h.alExtentShift, hotExtents: null, inUse: null} : null
    row.diskSize = h.diskSize
    row.lastSyncMs = h.lastSyncMs > 0 ? h.lastSyncMs : null
    row.lastSync = row.lastSyncMs ? new Date(row.lastSyncMs).toISOString() : null
    row.lastSeq = h.lastSeq
    row.generation = h.generation
    row.rpoSeconds = h.settings.rpoSeconds
    row.compress = compressText(h.settings.compress)
    row.ageSeconds = row.lastSyncMs ? Math.max(0, Math.round((now - row.lastSyncMs) / 1000)) : null
    row.lastAttempt = await readLastAttempt(disk)
    // The .psf is the record of successes: a sync it records after the failed attempt (a
    // vdrep that wrote no side file) clears the failure too.
    const la = row.lastAttempt
    row.lastAttemptFailed = la !== null && !la.ok && !(row.lastSyncMs !== null && row.lastSyncMs > la.atMs)
    // A last sync later than now: the clock went back, and the replica's age is unknown.
    const future = row.lastSyncMs !== null && row.lastSyncMs > now

    const live = await askTracker(disk, opts.trackerTimeoutMs ?? 2000)
    // A .psf that is not this disk's (a clone, a swapped .psf, the disk replaced under its
    // tracker): shown as an error, whatever else the record says.
    const foreign = await foreignRecord(record, disk, live !== null)
    if (foreign) {
      row.state = 'Error'
      row.error = errorOf(foreign)
      row.reason = foreign.message
      return row
    }
    if (live) {
      row.tracking = true
      row.tracker = {pid: live.pid, nbd: live.nbd, clients: live.clients, frozen: live.frozen !== null}
      row.dirtyBlocks = live.dirtyBlocks
      row.inflightBlocks = live.inflightBlocks
      row.pendingBlocks = live.pendingBlocks
      row.bytesPending = live.bytesPending
      if (row.activityLog && live.activityLog) {
        row.activityLog.hotExtents = live.activityLog.hotExtents
        row.activityLog.inUse = live.activityLog.inUse
      }
    } else {
      const {active, inflight} = await record.bitmaps()
      const pending = unionOf(active, inflight)
      row.dirtyBlocks = active.count()
      row.inflightBlocks = inflight.count()
      row.pendingBlocks = pending.count()
      row.bytesPending = bytesCovered(pending, h.blockSize, h.diskSize)
    }

    const full = flagDoubt(h)
    if (h.flags & HeaderFlag.REPLICA_PROMOTED) {
      row.state = 'Fenced'
      row.reason =
        'the replica host refused the last sync: the replica was promoted by a failover and takes nothing from this disk; fail back with `vdrep reprotect` on the replica host (this disk becomes its replica)'
    } else if (h.flags & HeaderFlag.REPLICA_DIVERGED) {
      row.state = 'Diverged'
      row.reason =
        'the replica host refused the last sync: the replica was written outside vdrep since its last commit, or is open by another program; nothing is sent to it until `vdrep fullsync --discard-replica-changes` (its changes are lost); `vdrep verify` counts and lists the changed blocks'
    } else if (h.flags & HeaderFlag.REPLICA_FOREIGN) {
      row.state = 'Foreign replica'
      row.reason =
        'the replica host refused the last sync: the replica belongs to another source; give this disk another target, or hand the replica over with `vdrep fullsync --take-over-replica`'
    } else if (full) {
      row.state = 'Full sync needed'
      row.reason = full.message
    } else if (live?.broken) {
      row.state = 'Error'
      row.reason = `the tracker cannot record writes: ${live.broken}`
    } else if (live?.verifying) {
      row.state = 'Verifying'
      row.reason = `the tracker checks the disk against the block hash index (${live.verifying.reason}): ${live.verifying.blocksDone} of ${live.verifying.blocksTotal} blocks; pushes wait for it`
    } else if (live && h.flags & HeaderFlag.VERIFY_NEEDED) {
      row.state = 'Error'
      row.reason =
        'the tracker could not check the disk against the block hash index (see its log); pushes are refused until a restart of `vdrep track` checks it'
    } else if (live) {
      row.state = live.frozen ? 'Pushing' : 'OK'
    } else if (!(h.flags & HeaderFlag.CLEAN_SHUTDOWN)) {
      // The tracker clears the clean-stop flag while it runs, and a push or scan without one
      // sets it again: a flag still clear with no tracker answering is a tracker that died.
      row.state = 'Error'
      row.reason =
        'a tracker was running (the .psf records no clean stop) but none answers on the control socket: it was killed or hung; its record is kept, and the next push or `vdrep track` first checks every block against the block hash index (a local read)'
    } else {
      const stamp = await stampOf(disk).catch((err: unknown) => {
        row.error = errorOf(err)
        return null
      })
      if (!stamp) {
        row.state = 'Error'
        row.reason = `cannot stat the disk: ${row.error?.message}`
      } else {
        const doubt = record.doubt(stamp, {trackerRunning: false})
        ;({state: row.state, reason: row.reason} = untrackedReason(doubt))
        if (!doubt && h.flags & HeaderFlag.HANDED_OVER) {
          row.state = 'Handed over'
          row.reason =
            'the last push was final (`push --final`): the replica host may fail over with `vdrep failover --planned`; a later push ends the handover'
        }
      }
    }
    // A disk a failover promoted (its replica state beside it says so): shown as such.
    const promoted = (await readReplicaState(disk).catch(() => ({state: undefined}))).state?.promoted
    if (promoted && promoted.newReplicaId === h.replicaId.toString('hex')) {
      row.promoted = {epoch: promoted.epoch, atSeq: promoted.atSeq, ms: promoted.ms, planned: promoted.planned, rolledBackTo: promoted.rollbackTo}
      const note = `promoted by a failover at ${new Date(promoted.ms).toISOString()} (epoch ${promoted.epoch}${promoted.rollbackTo !== undefined ? `, rolled back to point ${promoted.rollbackTo}` : ''}): a source now; \`vdrep reprotect\` replicates it back to its old primary`
      row.reason = row.reason ? `${note}; ${row.reason}` : note
    }
    // The next push would not be a delta (read by `status --check` and scripts).
    row.untrusted = row.state === 'Full sync needed'
    // Past the RPO, never synced, or of unknown age: the replica may be too old.
    if (row.state !== 'Error' && row.rpoSeconds !== null) {
      const age = row.ageSeconds
      if (future || age === null || age > row.rpoSeconds) {
        row.rpoViolated = true
        // A row that needs a full sync keeps that state (and its reason, which says why).
        if (!['Full sync needed', 'Diverged', 'Foreign replica', 'Fenced', 'Handed over'].includes(row.state)) {
          const why = future
            ? `the last sync is recorded ${formatDuration(Math.ceil(((row.lastSyncMs ?? 0) - now) / 1000))} in the future (the clock went back), so the replica's age is unknown; the next \`push --if-due\` runs`
            : age === null
              ? 'never synced'
              : `the replica is ${formatDuration(age)} old, past the RPO of ${formatDuration(row.rpoSeconds)}`
          row.reason = row.reason ? `${why}; ${row.reason}` : why
          row.state = 'RPO violation'
        }
      }
    }
    if (row.lastAttemptFailed && la) markFailedAttempt(row, la)
    return row
  } catch (err) {
    row.state = 'Error'
    row.error = errorOf(err)
    row.reason = row.error.message
    return row
  } finally {
    await record.close().catch(() => {})
  }
}

/** A failing push is what the row says first: the state a person reads, and the reason why. */
function markFailedAttempt(row: DiskStatusRow, la: LastAttempt): void {
  const n = la.failuresInRow > 1 ? ` (${la.failuresInRow} failures in a row)` : ''
  const why = `the last ${la.kind} failed at ${new Date(la.atMs).toISOString()}${n}: ${la.errorCode}: ${la.errorMessage}`
  row.reason = row.reason ? `${why}; ${row.reason}` : why
  if (row.state === 'OK' || row.state === 'Not tracking' || row.state === 'RPO violation') row.state = 'Push failed'
}

/** Rows for the given disks, in order; with none, every disk with a .psf in `dir` or in the state folder. */
export async function statusRows(disks: string[], opts: StatusOptions & {dir?: string} = {}): Promise<DiskStatusRow[]> {
  const list = disks.length > 0 ? disks : [...(await disksIn(opts.dir ?? process.cwd())), ...(await disksInStateFolder())]
  const rows: DiskStatusRow[] = []
  for (const d of list) rows.push(await diskStatus(d, opts))
  return rows
}

/** Disks that have a `<disk>.psf` in `dir`. */
export async function disksIn(dir: string): Promise<string[]> {
  const names = await fs.readdir(dir).catch(() => [] as string[])
  return names
    .filter((n) => n.endsWith('.psf') && n.length > 4)
    .sort()
    .map((n) => path.join(dir, n.slice(0, -4)))
}

/** The identity rule's refusal for this record and the disk in front of it, or null (read only). */
async function foreignRecord(record: ChangeRecord, disk: string, trackerRunning: boolean): Promise<StateError | null> {
  const [now, stamp] = await Promise.all([identityOf(disk), stampOf(disk)]).catch(() => [null, null] as const)
  if (!now || !stamp) return null // the stat fails again below and says why
  const v = identityVerdict(record.header, disk, now, stamp, {trackerRunning})
  return v.kind === 'refused' ? v.error : null
}
