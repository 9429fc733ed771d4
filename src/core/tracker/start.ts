// Starting a tracker when the only doubt about the record is a moved ctime (chmod, chown, a
// new hard link): the doubt is resolved by a local verification, not by trust and not by a
// refusal. The scan compares every block with the block hash index of the last sync, marks
// the ones that differ, and records the disk's stamp; then the tracker starts on a record
// that is complete again. A write whose mtime was put back is found by that scan.
import {VdrepError} from '../errors.js'
import {scanDisk, type ScanResult} from './scan.js'
import {Tracker, type TrackerOptions} from './tracker.js'

export interface StartedTracking {
  tracker: Tracker
  /** The verification run first, when only the disk's ctime had moved. */
  verified?: ScanResult
}

export async function startTracking(disk: string, opts: TrackerOptions): Promise<StartedTracking> {
  try {
    return {tracker: await Tracker.start(disk, opts)}
  } catch (err) {
    if (!(err instanceof VdrepError) || err.code !== 'DISK_CTIME_CHANGED') throw err
    opts.log?.(
      'info',
      `only the disk's ctime changed since the record was last complete (chmod, chown or a new link): checking every block against the block hash index of the last sync before serving (a local read)`,
    )
    const verified = await scanDisk(disk, {log: opts.log})
    opts.log?.('info', `checked ${verified.blocksScanned} blocks: ${verified.blocksNewlyMarked} changed and not yet marked, now marked`)
    return {tracker: await Tracker.start(disk, opts), verified}
  }
}
