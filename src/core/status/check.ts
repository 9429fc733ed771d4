// `status --check`: the one place that turns status rows into the exit code monitoring reads.
// Anything that is not healthy is non-zero; the code says which kind of trouble came first.
import {ExitCode} from '../errors.js'
import type {DiskStatusRow} from './status.js'

/**
 * 0 only when at least one disk was found and every disk is healthy:
 * - 6 (RPO_VIOLATED): a replica past its RPO, never synced, or of unknown age (clock went back);
 * - 1 (FAILURE): no disks found, or a disk in the Error state (unreadable disk or .psf, a
 *   tracker that died or cannot record writes);
 * - 4 (FULL_SYNC_NEEDED): a corrupt or foreign .psf, a record marked untrusted, a disk that
 *   shrank, or a disk written while no tracker ran (the next push would not be a delta).
 */
export function checkExitCode(rows: readonly DiskStatusRow[]): number {
  if (rows.length === 0) return ExitCode.FAILURE
  if (rows.some((r) => r.rpoViolated)) return ExitCode.RPO_VIOLATED
  if (rows.some((r) => r.state === 'Error')) return ExitCode.FAILURE
  if (rows.some((r) => r.state === 'Full sync needed' || r.untrusted)) return ExitCode.FULL_SYNC_NEEDED
  return ExitCode.OK
}
