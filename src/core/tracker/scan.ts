// `vdrep track <disk> --scan`: for disks written by something vdrep does not front. A local
// verification (verification/): every block (holes skipped) is hashed and compared with the
// block hash index of the last proved sync; blocks that differ are marked in the active
// bitmap, persisted once at the end. Local reads only. A scan re-establishes trust: it
// records the disk's stamp as it was when the scan began, so a later write (during or after
// the scan) is detected. On a live disk the guarantee is per block, like rsync on a file
// being written.
import {FullSyncNeededError} from '../errors.js'
import {checkOpenedDisk} from '../change-record/identity.js'
import {canVerify} from '../change-record/doubt.js'
import {SourceDisk} from '../disk/source-disk.js'
import {settledStat, stampOf} from '../psf/disk-stamp.js'
import {bytesCovered} from '../change-record/moves.js'
import type {CompareOptions, CompareProgress} from '../verification/compare-index.js'
import {verifyOwnedRecord} from '../verification/verify-record.js'
import {badPageWarning, openRecord} from './record.js'

export interface ScanProgress extends CompareProgress {
  phase: 'scan' | 'done'
}

export interface ScanOptions extends Omit<CompareOptions, 'progress'> {
  progress?: (p: ScanProgress) => void
}

export interface ScanResult {
  disk: string
  blocksScanned: number
  bytesScanned: number
  /** Blocks whose contents differ from the index (marked dirty). */
  blocksMarked: number
  /** Of those, blocks that were not already dirty. */
  blocksNewlyMarked: number
  /** Blocks dirty now, in total (what the next push sends). */
  dirtyBlocks: number
  bytesPending: number
  blockSize: number
  /** The disk was checksummed through a mapping (xxh3 with the addon), not read into buffers. */
  mapped: boolean
  seconds: number
}

export async function scanDisk(diskArg: string, opts: ScanOptions = {}): Promise<ScanResult> {
  const t0 = performance.now()
  const rec = await openRecord(diskArg, 'scan')
  const {disk, record} = rec
  try {
    const h = record.header
    if (!canVerify(h)) {
      throw new FullSyncNeededError(`cannot scan ${disk}: no proved full sync has recorded the block hash index to compare with; a full sync is needed`, {
        hint: `run \`vdrep fullsync ${disk}\``,
      })
    }
    const source = await SourceDisk.open(disk)
    try {
      // The disk read is the one the record names (the path may have been swapped since the check).
      checkOpenedDisk(record, disk, await source.stat(), source.size, {trackerRunning: false})
      if (source.size !== h.diskSize) {
        throw new FullSyncNeededError(`cannot scan ${disk}: the disk is ${source.size} bytes but the .psf was made for ${h.diskSize}; a full sync is needed`, {
          hint: `run \`vdrep fullsync ${disk}\``,
        })
      }
      const before = await settledStat(() => stampOf(disk))
      let last: CompareProgress | undefined
      const v = await verifyOwnedRecord(record, source, disk, before, {
        ...opts,
        badPage: (region, p) => opts.log?.('warn', badPageWarning(record.path, region, p, record.blockCount)),
        progress: (p) => {
          last = p
          opts.progress?.({...p, phase: 'scan'})
        },
      })
      if (last) opts.progress?.({...last, phase: 'done'})
      const active = (await record.bitmaps()).active
      return {
        disk,
        blocksScanned: v.blocksScanned,
        bytesScanned: v.bytesScanned,
        blocksMarked: v.blocksMarked,
        blocksNewlyMarked: v.blocksNewlyMarked,
        dirtyBlocks: active.count(),
        bytesPending: bytesCovered(active, h.blockSize, source.size),
        blockSize: h.blockSize,
        mapped: v.mapped,
        seconds: (performance.now() - t0) / 1000,
      }
    } finally {
      await source.close()
    }
  } finally {
    await record.close().catch(() => {})
    await rec.diskLock.release()
    rec.lock.release()
  }
}
