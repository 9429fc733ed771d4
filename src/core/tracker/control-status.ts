// What a tracker's control socket answers to `status` (control-client.ts asks, tracker.ts
// answers): one shape for both ends.
import type {FreezeInfo} from './freezer.js'
import type {VerificationInfo} from './verifier.js'

/** The running freeze, as the tracker's freezer reports it (one shape for both ends). */
export type TrackerFreezeInfo = FreezeInfo

/** What `status` answers. */
export interface TrackerStatus {
  version: number
  pid: number
  disk: string
  exportName: string
  /** Where NBD is served: unix:PATH or HOST:PORT. */
  nbd: string[]
  /** NBD clients connected now. */
  clients: number
  controlClients: number
  blockSize: number
  diskSize: number
  blockCount: number
  /** Blocks in the active set (written since the last freeze). */
  dirtyBlocks: number
  /** Blocks a running push is shipping. */
  inflightBlocks: number
  /** Blocks in either set, and the bytes of disk they cover: what is not on the replica yet. */
  pendingBlocks: number
  bytesPending: number
  frozen: TrackerFreezeInfo | null
  /** The check against the block hash index running behind the export (verifier.ts), or null; absent from older trackers. */
  verifying?: VerificationInfo | null
  startedMs: number
  writes: number
  bytesWritten: number
  newlyDirtied: number
  batches: number
  pageWrites: number
  /** The activity log (absent from older trackers): whether writes go through it, extents hot, transactions. */
  activityLog?: {inUse: boolean; hotExtents: number; extents: number; extentBytes: number} | null
  alTransactions?: number
  alHotted?: number
  alEvicted?: number
  /** Data writes that waited for a log transaction, and their summed wait in ms. */
  alWaits?: number
  alWaitMs?: number
  lazyFlushes?: number
  /** Set when a .psf write failed: the tracker refuses writes until restarted. */
  broken: string | null
}
