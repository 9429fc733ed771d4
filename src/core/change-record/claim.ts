// Who may write a disk's change record now, decided once per push or full sync. At every
// moment exactly one process may write the .psf:
//   - a running tracker (it holds the .psf's flock for its life, tracker/record.ts), which then
//     executes every transition a push or full sync asks of it over its control socket;
//   - else the process holding the disk lock (`<disk>.vdrep.lock`): a tracker's start takes
//     that lock too (until its control socket answers), so no tracker can start under it, and
//     a tracker that runs but does not answer (its flock is held) makes the claim fail.
// A process that does not own the record opens it read-only: it cannot write it by mistake.
// Either way the record must be the disk's own (identity.ts) before anyone uses it.
import {LockError} from '../errors.js'
import {psfPathFor} from '../psf/psf-file.js'
import {acquireDiskLock, checkNoUnreachableTracker, type HeldLock} from '../locks/index.js'
import {TrackerControlClient} from '../tracker/control-client.js'
import {ChangeRecord} from './change-record.js'
import {checkRecordIdentity} from './identity.js'
import type {RecordWriter} from './writer.js'

export interface RecordClaim {
  /** Writable when this process owns the record (no tracker runs), read-only otherwise. */
  record: ChangeRecord
  /** The running tracker, or null. */
  tracker: TrackerControlClient | null
  /** Where the transitions go: the tracker when one runs, else `record` itself. */
  writer: RecordWriter
  /** `record` when this process writes it itself (no tracker), else null. */
  owned: ChangeRecord | null
  /** Said once when a format-1 record was bound to its disk now (identity.ts), else null. */
  bound: string | null
  release(): Promise<void>
}

export interface ClaimOptions {
  /** The caller (a push falling back to a full sync) holds the disk lock already. */
  lockHeld?: boolean
}

/** Take the disk lock (unless held), find the owner, open the record accordingly. */
export async function claimRecord(disk: string, what: string, opts: ClaimOptions = {}): Promise<RecordClaim> {
  const lock: HeldLock | undefined = opts.lockHeld ? undefined : await acquireDiskLock(disk, what)
  let tracker: TrackerControlClient | null = null
  try {
    tracker = await TrackerControlClient.tryConnect(disk)
    const path = psfPathFor(disk)
    if (!tracker) await checkNoUnreachableTracker(disk, path)
    const record = tracker ? await ChangeRecord.openReadOnly(path) : await ChangeRecord.openOwned(path)
    // Whose record: a clone, a swapped .psf or a disk replaced under the tracker is refused here,
    // before anything connects to the replica the record names.
    let bound: string | null
    try {
      bound = await checkRecordIdentity(record, disk, {trackerRunning: tracker !== null})
    } catch (err) {
      await record.close().catch(() => {})
      throw err
    }
    const t = tracker
    return {
      bound,
      record,
      tracker: t,
      writer: t ?? record,
      owned: t ? null : record,
      release: async () => {
        try {
          await t?.close()
          await record.close()
        } finally {
          await lock?.release()
        }
      },
    }
  } catch (err) {
    await tracker?.close().catch(() => {})
    await lock?.release()
    throw err
  }
}

/** For callers that must not proceed without being the record's writer themselves. */
export function requireOwned(claim: RecordClaim, why: string): ChangeRecord {
  if (!claim.owned) throw new LockError(`${why}: a tracker owns the change record of this disk`, {hint: 'stop `vdrep track` first'})
  return claim.owned
}
