// The shape of one `vdrep status` row (what --json prints and monitoring reads). The decisions
// that fill it in live in status.ts.
import type {LastAttempt} from './last-attempt.js'

export type DiskState =
  | 'OK'
  | 'Pushing'
  | 'Verifying'
  | 'Verify pending'
  | 'Full sync needed'
  | 'Not tracking'
  | 'Error'
  | 'RPO violation'
  | 'Diverged'
  | 'Foreign replica'
  | 'Fenced'
  | 'Handed over'
  | 'Push failed'

export interface TrackerSummary {
  pid: number
  nbd: string[]
  /** NBD clients connected. */
  clients: number
  /** A push (or full sync) holds a freeze now. */
  frozen: boolean
}

export interface DiskStatusRow {
  disk: string
  /** Replica as recorded at init; null when the .psf cannot be read. */
  target: string | null
  /** The consistency group named in the disk's settings (`init --group`, `vdrep config DISK group NAME`), or null. */
  group: string | null
  /** A tracker answers on the disk's control socket. */
  tracking: boolean
  tracker: TrackerSummary | null
  state: DiskState
  /** Why the state is not plain OK / Not tracking; null otherwise. */
  reason: string | null
  /** Blocks written since the last freeze (active set). */
  dirtyBlocks: number
  /** Blocks a push is shipping now (in-flight set). */
  inflightBlocks: number
  /** Blocks in either set: what is not on the replica yet. */
  pendingBlocks: number
  bytesPending: number
  blockSize: number | null
  diskSize: number | null
  /** Last successful sync, ms since the epoch and ISO text; null when never. */
  lastSyncMs: number | null
  lastSync: string | null
  lastSeq: number | null
  generation: number | null
  rpoSeconds: number | null
  /** Compression on the wire as set for the disk ('auto', 'none' or a zstd level as text); null when unknown. */
  compress: string | null
  /** Seconds since the last successful sync; null when never. */
  ageSeconds: number | null
  /** The replica is older than the RPO allows, was never synced, or its age is unknown (the clock went back). */
  rpoViolated: boolean
  /** Promoted by `vdrep failover` (its replica state says so), or absent. */
  promoted?: {epoch: number; atSeq: number; ms: number; planned: boolean; rolledBackTo?: number}
  /** The change record cannot be trusted for a delta as the disk is now (written while no tracker ran). */
  untrusted: boolean
  /** The activity log's settings (null: the .psf could not be read, or has none yet); hot extents from a running tracker. */
  activityLog: {extents: number; extentBytes: number; hotExtents: number | null; inUse: boolean | null} | null
  error: {code: string; message: string; hint?: string} | null
  /** The last push or full sync, whatever its outcome (last-attempt.ts); null when none is recorded. */
  lastAttempt: LastAttempt | null
  /** The last attempt failed and no sync succeeded since: shown until a success. */
  lastAttemptFailed: boolean
}

export function emptyRow(disk: string): DiskStatusRow {
  return {
    disk,
    target: null,
    group: null,
    tracking: false,
    tracker: null,
    state: 'Error',
    reason: null,
    dirtyBlocks: 0,
    inflightBlocks: 0,
    pendingBlocks: 0,
    bytesPending: 0,
    blockSize: null,
    diskSize: null,
    lastSyncMs: null,
    lastSync: null,
    lastSeq: null,
    generation: null,
    rpoSeconds: null,
    compress: null,
    ageSeconds: null,
    rpoViolated: false,
    untrusted: false,
    activityLog: null,
    error: null,
    lastAttempt: null,
    lastAttemptFailed: false,
  }
}
