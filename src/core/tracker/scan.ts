// `vdrep track <disk> --scan`: for disks written by something vdrep does not front. Reads
// the disk (holes skipped), hashes every block and compares it with the block hash index of
// the last proved sync; blocks that differ are marked in the active bitmap, persisted once
// at the end. Local reads only. A scan re-establishes trust: it records the disk's stamp as
// it was when the scan began, so a later write (during or after the scan) is detected.
// On a live disk the guarantee is per block, like rsync on a file being written.
import {FullSyncNeededError} from '../errors.js'
import {readChunks} from '../disk/chunk-reader.js'
import {SourceDisk} from '../disk/source-disk.js'
import {blockHasher, HASH_LENGTH} from '../hash/block-hash.js'
import {isAllZero} from '../hash/zero.js'
import {HeaderFlag} from '../psf/header.js'
import {BITS_PER_PAGE, HASHES_PER_PAGE, Region} from '../psf/layout.js'
import {stampOf} from './disk-stamp.js'
import {bytesCovered, nonEmptyPages} from './dirty-log.js'
import {badPageWarning, loadBitmaps, openRecord} from './record.js'

const READ_CHUNK = 4 << 20

export interface ScanProgress {
  phase: 'scan' | 'done'
  blocksDone: number
  blocksTotal: number
  bytesDone: number
  bytesTotal: number
  blocksMarked: number
}

export interface ScanOptions {
  progress?: (p: ScanProgress) => void
  log?: (level: 'warn' | 'info', line: string) => void
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
  seconds: number
}

export async function scanDisk(diskArg: string, opts: ScanOptions = {}): Promise<ScanResult> {
  const t0 = performance.now()
  const rec = await openRecord(diskArg, 'scan')
  const {disk, psf} = rec
  try {
    const h = psf.header
    if (h.flags & HeaderFlag.NEEDS_FULL_SYNC || !(h.flags & HeaderFlag.INDEX_VALID)) {
      throw new FullSyncNeededError(`cannot scan ${disk}: no proved full sync has recorded the block hash index to compare with; a full sync is needed`, {
        hint: `run \`vdrep fullsync ${disk}\``,
      })
    }
    const source = await SourceDisk.open(disk)
    try {
      if (source.size !== h.diskSize) {
        throw new FullSyncNeededError(`cannot scan ${disk}: the disk is ${source.size} bytes but the .psf was made for ${h.diskSize}; a full sync is needed`, {
          hint: `run \`vdrep fullsync ${disk}\``,
        })
      }
      const before = await stampOf(disk)
      const bs = h.blockSize
      const blockCount = psf.layout.blockCount
      const maps = await loadBitmaps(psf)
      for (const p of maps.activeBad) opts.log?.('warn', badPageWarning(psf.path, 'active', p, blockCount))
      for (const p of maps.inflightBad) opts.log?.('warn', badPageWarning(psf.path, 'in-flight', p, blockCount))
      const active = maps.active
      const touched = new Set<number>([...maps.activeBad, ...nonEmptyPages(maps.inflight)])
      active.merge(maps.inflight) // a push that died left these in flight

      const {hashes, badPages: badIndex} = await psf.readIndex()
      const unknown = new Uint8Array(blockCount) // blocks whose index page is bad: dirty, not compared
      for (const p of badIndex) {
        const first = p * HASHES_PER_PAGE
        const last = Math.min(blockCount, first + HASHES_PER_PAGE) - 1
        opts.log?.('warn', `page ${p} of the block hash index in ${psf.path} failed its checksum: blocks ${first}..${last} are marked changed`)
        unknown.fill(1, first, last + 1)
      }

      const hasher = blockHasher(h.hashAlgo)
      const p: ScanProgress = {phase: 'scan', blocksDone: 0, blocksTotal: blockCount, bytesDone: 0, bytesTotal: source.size, blocksMarked: 0}
      let newly = 0
      const mark = (b: number) => {
        p.blocksMarked++
        if (!active.get(b)) {
          active.set(b)
          touched.add(Math.floor(b / BITS_PER_PAGE))
          newly++
        }
      }
      for await (const chunk of readChunks(source, source.size, bs, READ_CHUNK)) {
        for (let i = 0; i < chunk.count; i++) {
          const b = chunk.first + i
          if (unknown[b]) {
            mark(b)
            continue
          }
          const len = Math.min(bs, source.size - b * bs)
          const data = chunk.data && !chunk.holes[i] ? chunk.data.subarray(i * bs, i * bs + len) : undefined
          const hash = !data || isAllZero(data) ? hasher.zeroHash(len) : hasher.hash(data)
          if (!hash.equals(hashes.subarray(b * HASH_LENGTH, (b + 1) * HASH_LENGTH))) mark(b)
        }
        p.blocksDone = chunk.first + chunk.count
        p.bytesDone = Math.min(source.size, p.blocksDone * bs)
        opts.progress?.(p)
      }

      // Active pages durable first, then the in-flight set emptied, then the stamp.
      if (touched.size > 0) await psf.writeBitmap(Region.ACTIVE, active, [...touched].sort((a, b) => a - b))
      const inflightPages = [...new Set([...nonEmptyPages(maps.inflight), ...maps.inflightBad])]
      if (inflightPages.length > 0) {
        maps.inflight.clearAll()
        await psf.writeBitmap(Region.INFLIGHT, maps.inflight, inflightPages)
      }
      await psf.updateHeader({
        flags: psf.header.flags | HeaderFlag.CLEAN_SHUTDOWN,
        sourceSize: before.size,
        sourceMtimeNs: before.mtimeNs,
        sourceCtimeNs: before.ctimeNs,
      })
      p.phase = 'done'
      opts.progress?.(p)
      return {
        disk,
        blocksScanned: blockCount,
        bytesScanned: source.size,
        blocksMarked: p.blocksMarked,
        blocksNewlyMarked: newly,
        dirtyBlocks: active.count(),
        bytesPending: bytesCovered(active, bs, source.size),
        blockSize: bs,
        seconds: (performance.now() - t0) / 1000,
      }
    } finally {
      await source.close()
    }
  } finally {
    await psf.close().catch(() => {})
    await rec.pushLock.release()
    rec.lock.release()
  }
}
