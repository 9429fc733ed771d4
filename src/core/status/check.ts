// `status --check`: the one place that turns status rows into what monitoring reads. Anything
// that is not healthy is an error code (its exit code comes from the registry); the code says
// which kind of trouble came first.
import {ERROR_CODES, type ErrorCode} from '../errors.js'
import type {DiskStatusRow} from './status.js'

/**
 * null only when at least one disk was found and every disk is healthy; otherwise:
 * - REPLICA_PROMOTED (12): the replica was promoted by a failover: this source is fenced;
 * - REPLICA_DIVERGED (11), REPLICA_FOREIGN (10): the replica host refused the last sync (the
 *   replica moved on without vdrep, or belongs to another source): the user must decide;
 * - the last push or full sync failed and none succeeded since: that attempt's own code (7 for
 *   a cut connection, 9 for a full replica...; STATUS_CHECK_ERROR when the code is unknown to
 *   this vdrep), so a failing push is reported before the RPO runs out;
 * - RPO_VIOLATED (6): a replica past its RPO, never synced, or of unknown age (clock went back);
 * - STATUS_CHECK_ERROR (1): no disks found, or a disk in the Error state (unreadable disk or
 *   .psf, a tracker that died or cannot record writes);
 * - FULL_SYNC_NEEDED (4): a corrupt or foreign .psf, a record marked untrusted, a disk that
 *   shrank (the next push would not be a delta);
 * - VERIFY_PENDING (1): the record is trusted only after a local check against the block hash
 *   index (a tracker killed, the disk written while none ran, an unwatched block device), or a
 *   tracker runs that check now.
 */
export function statusCheckOutcome(rows: readonly DiskStatusRow[]): ErrorCode | null {
  if (rows.length === 0) return 'STATUS_CHECK_ERROR'
  if (rows.some((r) => r.state === 'Fenced')) return 'REPLICA_PROMOTED'
  if (rows.some((r) => r.state === 'Diverged')) return 'REPLICA_DIVERGED'
  if (rows.some((r) => r.state === 'Foreign replica')) return 'REPLICA_FOREIGN'
  const failed = rows.find((r) => r.lastAttemptFailed)
  if (failed) return recordedCode(failed.lastAttempt?.errorCode ?? null)
  if (rows.some((r) => r.rpoViolated)) return 'RPO_VIOLATED'
  if (rows.some((r) => r.state === 'Error')) return 'STATUS_CHECK_ERROR'
  if (rows.some((r) => r.state === 'Full sync needed' || r.untrusted)) return 'FULL_SYNC_NEEDED'
  if (rows.some((r) => r.state === 'Verify pending' || r.state === 'Verifying')) return 'VERIFY_PENDING'
  return null
}

function recordedCode(code: string | null): ErrorCode {
  return code !== null && Object.hasOwn(ERROR_CODES, code) ? (code as ErrorCode) : 'STATUS_CHECK_ERROR'
}
