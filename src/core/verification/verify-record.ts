// A local verification of a change record that this process owns (no tracker runs): every
// block is compared with the block hash index of the last sync, the differing ones are marked
// in the active bitmap (durable), a dead push's in-flight set is handed back, and the disk's
// stamp taken before the reads is recorded as the clean point (CLEAN_SHUTDOWN set,
// VERIFY_NEEDED cleared). From then on the record is complete for the disk as it is: a write
// during or after the reads moves the stamp and is found again.
import type {ChangeRecord} from '../change-record/change-record.js'
import type {DiskStamp} from '../psf/disk-stamp.js'
import type {SourceDisk} from '../disk/source-disk.js'
import {Bitmap} from '../psf/bitmap.js'
import {compareWithIndex, type CompareOptions} from './compare-index.js'

export interface RecordVerified {
  blocksScanned: number
  bytesScanned: number
  /** Blocks whose contents differ from the index (marked dirty). */
  blocksMarked: number
  /** Of those, blocks that were not already dirty. */
  blocksNewlyMarked: number
  mapped: boolean
  seconds: number
}

export interface VerifyRecordOptions extends CompareOptions {
  /** Warnings for bitmap pages that failed their checksum. */
  badPage?: (region: 'active' | 'in-flight', page: number) => void
}

export async function verifyOwnedRecord(
  record: ChangeRecord,
  source: SourceDisk,
  disk: string,
  stamp: DiskStamp,
  opts: VerifyRecordOptions = {},
): Promise<RecordVerified> {
  const t0 = performance.now()
  const h = record.header
  const maps = await record.bitmaps()
  for (const p of maps.activeBad) opts.badPage?.('active', p)
  for (const p of maps.inflightBad) opts.badPage?.('in-flight', p)
  const {hashes, badPages} = await record.readIndex()
  const changed = new Bitmap(record.blockCount)
  const cmp = await compareWithIndex(
    {
      source,
      path: disk,
      blockSize: h.blockSize,
      blockCount: record.blockCount,
      hashAlgo: h.hashAlgo,
      replicaId: h.replicaId,
      hashes,
      badPages,
      psfPath: record.path,
    },
    (b) => changed.set(b),
    opts,
  )
  // Active pages durable first, then the in-flight set emptied, then the stamp.
  const newly = await record.scanResult(changed, stamp)
  return {
    blocksScanned: record.blockCount,
    bytesScanned: source.size,
    blocksMarked: cmp.blocksChanged,
    blocksNewlyMarked: newly,
    mapped: cmp.mapped,
    seconds: (performance.now() - t0) / 1000,
  }
}
