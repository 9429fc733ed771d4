// The persistent state file `<disk>.psf`: created atomically, then updated in place.
// Header updates go to the older slot and are read back before they count; bitmap and
// index pages are written whole, each with its CRC.
import fs from 'node:fs/promises'
import {StateError} from '../errors.js'
import {lockHeaderSlots} from '../locks/header-lock.js'
import {HASH_LENGTH} from '../hash/block-hash.js'
import {writeFileAtomic} from '../util/fs-atomic.js'
import {namedFileHandle} from '../util/named-file-handle.js'
import {Bitmap} from './bitmap.js'
import {DEFAULT_AL_EXTENTS, encodeHeader, pickHeader, type PsfHeader} from './header.js'
import {BITS_PER_PAGE, HASHES_PER_PAGE, layoutFor, PAGE_SIZE, Region, SLOT_SIZE, type PsfLayout, type RegionId} from './layout.js'
import {decodePage, encodePage} from './page.js'
import {decodeActivityLog, encodeAlPayload, type ActivityLogImage} from './activity-log.js'
import {defaultAlExtentShift, emptyAlPages, fileImage} from './file-image.js'

export {newHeader, type PsfInit} from './file-image.js'

/** updateIndexBlocks: touched pages at most this far apart share one read and one write... */
const INDEX_RUN_GAP_PAGES = 8
/** ...of at most this many pages (1 MiB). */
const INDEX_RUN_PAGES = 256

async function readFully(fh: fs.FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let got = 0; got < buf.length;) {
    const {bytesRead} = await fh.read(buf, got, buf.length - got, position + got)
    if (bytesRead === 0) break // beyond the end: the rest stays zeros (and fails its CRC)
    got += bytesRead
  }
}

/** Where a disk's `.psf` is: beside it, or in a state folder (state-location.ts decides). */
export {psfPathFor} from './state-location.js'

export class PsfFile {
  private slot: 0 | 1
  /** Its owner migrated this file from format 1 or 2 to 3 when opening it. */
  migrated = false

  private constructor(
    readonly path: string,
    private fh: fs.FileHandle,
    public header: PsfHeader,
    slot: 0 | 1,
    public layout: PsfLayout,
  ) {
    this.slot = slot
  }

  /** Write a new .psf atomically (temp file, fsync, rename, fsync dir), mode 0600. */
  static async create(path: string, header: PsfHeader, bitmaps?: {active?: Bitmap; inflight?: Bitmap}): Promise<void> {
    const layout = layoutFor(header.diskSize, header.blockSize, header.alExtents)
    await writeFileAtomic(path, fileImage(header, layout, bitmaps), 0o600)
  }

  static async open(path: string, writable = true): Promise<PsfFile> {
    let fh: fs.FileHandle
    try {
      fh = await fs.open(path, writable ? 'r+' : 'r')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT')
        throw new StateError('PSF_MISSING', `no state file at ${path}`, {
          hint: 'run `vdrep init <disk> --to <target>` first (a replica synced before from this disk then belongs to another source: hand it over with `vdrep fullsync --take-over-replica`)',
        })
      throw new StateError('PSF_UNREADABLE', `cannot open ${path}: ${(err as Error).message}`, {cause: err})
    }
    try {
      const st = await fh.stat()
      if (!st.isFile()) throw new StateError('PSF_FOREIGN', `${path} is not a regular file`)
      const slots = Buffer.alloc(2 * SLOT_SIZE)
      const {bytesRead} = await fh.read(slots, 0, slots.length, 0)
      if (bytesRead < 8) throw new StateError('PSF_CORRUPT', `${path} is truncated (${st.size} bytes)`, {hint: 'run `vdrep init --force` and a full sync'})
      const {header, slot} = pickHeader(slots.subarray(0, SLOT_SIZE), slots.subarray(SLOT_SIZE))
      const layout = layoutFor(header.diskSize, header.blockSize, header.alExtents)
      if (st.size < layout.fileSize) {
        throw new StateError('PSF_CORRUPT', `${path} is truncated: ${st.size} bytes, the header needs ${layout.fileSize}`, {
          hint: 'run `vdrep init --force` and a full sync',
        })
      }
      // Errors of later writes then name the .psf (a full disk here is not the replica's).
      const psf = new PsfFile(path, namedFileHandle(fh, path), header, slot, layout)
      if (writable && header.alExtents === 0) await psf.migrate()
      return psf
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  /**
   * A format 1 or 2 record, opened by its owner: the activity log region is added after the
   * index (empty, durable), then the header is rewritten as format 3 naming it. A crash in
   * between leaves a longer format-2 file, migrated again at the next open.
   */
  private async migrate(): Promise<void> {
    const h = this.header
    const alExtents = DEFAULT_AL_EXTENTS
    const layout = layoutFor(h.diskSize, h.blockSize, alExtents)
    const pages = emptyAlPages(layout, alExtents)
    await this.fh.write(pages, 0, pages.length, layout.regionOffset[Region.ACTIVITY_LOG])
    await this.fh.datasync()
    await this.updateHeader(() => ({alExtents, alExtentShift: defaultAlExtentShift(h.blockSize)}))
    this.layout = layout
    this.migrated = true
  }

  /** The activity log, or why it cannot vouch for anything (a bad page, a format-2 record). */
  async readActivityLog(): Promise<ActivityLogImage | string> {
    if (this.header.alExtents === 0) return 'the record has no activity log (format 1 or 2)'
    const payloads: Array<Buffer | undefined> = []
    for (let p = 0; p < this.layout.alPages; p++) payloads.push(await this.readPage(Region.ACTIVITY_LOG, p))
    const extentCount = Math.ceil(this.header.diskSize / 2 ** this.header.alExtentShift)
    return decodeActivityLog(payloads, this.header.alExtents, extentCount)
  }

  /** Write the given pages of the activity log (ascending; neighbours as one write, in place), then one datasync. */
  async writeActivityLog(image: ActivityLogImage, pages: Iterable<number>, opts: {sync?: boolean} = {}): Promise<void> {
    const list = [...pages]
    for (let i = 0; i < list.length;) {
      let j = i + 1
      while (j < list.length && list[j] === list[j - 1] + 1) j++
      const run = Buffer.allocUnsafe((j - i) * PAGE_SIZE)
      for (let k = i; k < j; k++) encodePage(Region.ACTIVITY_LOG, list[k], encodeAlPayload(image, list[k])).copy(run, (k - i) * PAGE_SIZE)
      await this.fh.write(run, 0, run.length, this.layout.regionOffset[Region.ACTIVITY_LOG] + list[i] * PAGE_SIZE)
      i = j
    }
    if (opts.sync !== false) await this.fh.datasync()
  }

  async close(): Promise<void> {
    await this.fh.close()
  }

  /** Re-open the file after it was replaced (a disk that grew gets a new layout). */
  async reopen(): Promise<void> {
    const fresh = await PsfFile.open(this.path)
    await this.fh.close()
    this.fh = fresh.fh
    this.header = fresh.header
    this.slot = fresh.slot
    this.layout = fresh.layout
  }

  /** Re-read the current header: another process (the tracker, a push) may have updated it. */
  private async refreshHeader(): Promise<void> {
    const slots = Buffer.alloc(2 * SLOT_SIZE)
    await this.fh.read(slots, 0, slots.length, 0)
    const {header, slot} = pickHeader(slots.subarray(0, SLOT_SIZE), slots.subarray(SLOT_SIZE))
    this.header = header
    this.slot = slot
  }

  /**
   * Apply `patch` to the newest header on disk (not to our possibly stale copy: a tracker and
   * a push share the file), write it to the older slot, sync, read it back; only then is it current.
   * A function patch is given that newest header: flags must be changed that way (set or clear
   * bits of what is on disk), or a flag another process set meanwhile is lost.
   */
  async updateHeader(patch: Partial<PsfHeader> | ((current: PsfHeader) => Partial<PsfHeader>)): Promise<PsfHeader> {
    const unlock = await this.lockHeaderSlots()
    try {
      return await this.updateHeaderLocked(patch)
    } finally {
      unlock()
    }
  }

  /** The header lock (locks/header-lock.ts) on the two header slots. */
  private lockHeaderSlots(): Promise<() => void> {
    return lockHeaderSlots(this.fh.fd, this.path, {start: 0, length: 2 * SLOT_SIZE})
  }

  private async updateHeaderLocked(patch: Partial<PsfHeader> | ((current: PsfHeader) => Partial<PsfHeader>)): Promise<PsfHeader> {
    await this.refreshHeader()
    const fields = typeof patch === 'function' ? patch(this.header) : patch
    const next: PsfHeader = {...this.header, ...fields, counter: this.header.counter + 1n}
    const encoded = encodeHeader(next)
    const target: 0 | 1 = this.slot === 0 ? 1 : 0
    await this.fh.write(encoded, 0, SLOT_SIZE, target * SLOT_SIZE)
    await this.fh.datasync()
    const back = Buffer.alloc(SLOT_SIZE)
    await this.fh.read(back, 0, SLOT_SIZE, target * SLOT_SIZE)
    if (!back.equals(encoded)) throw new StateError('PSF_WRITE_FAILED', `the .psf header written to ${this.path} did not read back intact`)
    this.header = next
    this.slot = target
    return next
  }

  private async readPage(region: RegionId, p: number): Promise<Buffer | undefined> {
    const page = Buffer.alloc(PAGE_SIZE)
    await this.fh.read(page, 0, PAGE_SIZE, this.layout.regionOffset[region] + p * PAGE_SIZE)
    return decodePage(page, region, p)
  }

  /** A bitmap; a page that fails its CRC marks every block it covers dirty (listed in badPages). */
  async readBitmap(region: typeof Region.ACTIVE | typeof Region.INFLIGHT): Promise<{bitmap: Bitmap; badPages: number[]}> {
    const bitmap = new Bitmap(this.layout.blockCount)
    const badPages: number[] = []
    for (let p = 0; p < this.layout.bitmapPages; p++) {
      const payload = await this.readPage(region, p)
      const firstBlock = p * BITS_PER_PAGE
      const byteStart = firstBlock / 8
      const byteEnd = Math.min(bitmap.bits.length, byteStart + BITS_PER_PAGE / 8)
      if (payload) bitmap.bits.set(payload.subarray(0, byteEnd - byteStart), byteStart)
      else {
        badPages.push(p)
        bitmap.setRange(firstBlock, BITS_PER_PAGE)
      }
    }
    return {bitmap, badPages}
  }

  /** Write the given pages of a bitmap (all when omitted), then one datasync (unless `sync: false`). */
  async writeBitmap(
    region: typeof Region.ACTIVE | typeof Region.INFLIGHT,
    bitmap: Bitmap,
    pages?: Iterable<number>,
    opts: {sync?: boolean} = {},
  ): Promise<void> {
    const list = pages ? [...pages] : Array.from({length: this.layout.bitmapPages}, (_, i) => i)
    for (const p of list) {
      const start = (p * BITS_PER_PAGE) / 8
      const payload = bitmap.bits.subarray(start, start + BITS_PER_PAGE / 8)
      await this.fh.write(encodePage(region, p, payload), 0, PAGE_SIZE, this.layout.regionOffset[region] + p * PAGE_SIZE)
    }
    if (opts.sync !== false) await this.fh.datasync()
  }

  /** The block hash index: hashes[i*32..] for block i; blocks on a bad page are listed. */
  async readIndex(): Promise<{hashes: Buffer; badPages: number[]}> {
    const hashes = Buffer.alloc(this.layout.blockCount * HASH_LENGTH)
    const badPages: number[] = []
    for (let p = 0; p < this.layout.indexPages; p++) {
      const payload = await this.readPage(Region.INDEX, p)
      const start = p * HASHES_PER_PAGE * HASH_LENGTH
      const len = Math.min(HASHES_PER_PAGE * HASH_LENGTH, hashes.length - start)
      if (payload) payload.copy(hashes, start, 0, len)
      else badPages.push(p)
    }
    return {hashes, badPages}
  }

  /** Write index pages covering [firstBlock, firstBlock + hashes/32); firstBlock must start a page. */
  async writeIndexPages(firstBlock: number, hashes: Buffer): Promise<void> {
    if (firstBlock % HASHES_PER_PAGE !== 0) throw new RangeError(`index write must start on a page boundary, not block ${firstBlock}`)
    const perPage = HASHES_PER_PAGE * HASH_LENGTH
    const firstPage = firstBlock / HASHES_PER_PAGE
    const pages = Math.ceil(hashes.length / perPage)
    const out = Buffer.allocUnsafe(pages * PAGE_SIZE)
    for (let i = 0; i < pages; i++) encodePage(Region.INDEX, firstPage + i, hashes.subarray(i * perPage, (i + 1) * perPage)).copy(out, i * PAGE_SIZE)
    await this.fh.write(out, 0, out.length, this.layout.regionOffset[Region.INDEX] + firstPage * PAGE_SIZE)
  }

  /**
   * Set the index entries of some blocks (a push's shipped blocks): only their pages change.
   * Pages close together are read and written in one call per run (a 1% push of a 4 GiB disk
   * touches nearly all of its 516 pages: one read and one write each was ~1000 round trips to
   * the thread pool, 40-60 ms after every commit). Untouched pages inside a run are written
   * back byte for byte as they were read, a bad one included.
   */
  async updateIndexBlocks(hashes: Map<number, Buffer>): Promise<void> {
    const byPage = new Map<number, number[]>()
    for (const b of hashes.keys()) {
      const p = Math.floor(b / HASHES_PER_PAGE)
      const list = byPage.get(p)
      if (list) list.push(b)
      else byPage.set(p, [b])
    }
    const pages = [...byPage.keys()].sort((a, b) => a - b)
    const payload = Buffer.alloc(HASHES_PER_PAGE * HASH_LENGTH)
    for (let i = 0; i < pages.length;) {
      let j = i + 1
      while (j < pages.length && pages[j] - pages[j - 1] <= INDEX_RUN_GAP_PAGES && pages[j] - pages[i] < INDEX_RUN_PAGES) j++
      const first = pages[i]
      const buf = Buffer.alloc((pages[j - 1] - first + 1) * PAGE_SIZE)
      const at = this.layout.regionOffset[Region.INDEX] + first * PAGE_SIZE
      await readFully(this.fh, buf, at)
      for (let k = i; k < j; k++) {
        const p = pages[k]
        const raw = buf.subarray((p - first) * PAGE_SIZE, (p - first + 1) * PAGE_SIZE)
        // A page that fails its CRC starts from zeros: its other blocks then read as changed to --scan.
        payload.fill(0)
        decodePage(raw, Region.INDEX, p)?.copy(payload, 0, 0, payload.length)
        for (const b of byPage.get(p) as number[]) (hashes.get(b) as Buffer).copy(payload, (b - p * HASHES_PER_PAGE) * HASH_LENGTH)
        encodePage(Region.INDEX, p, payload).copy(raw)
      }
      await this.fh.write(buf, 0, buf.length, at)
      i = j
    }
  }

  async sync(): Promise<void> {
    await this.fh.datasync()
  }
}
