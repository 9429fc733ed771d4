// The tracker's change record in memory and in the .psf: the active bitmap (new writes) and
// the in-flight bitmap (what a push is shipping). Before `mark` resolves, every block it
// marks is covered durably: with an activity log (activity-log.ts), by its extent being hot
// in the log, and its bit reaches the .psf lazily (every FLUSH_MS, when UNFLUSHED_PAGES pages
// wait, when its extent is evicted, at a freeze and a clean stop); without one, or for a
// request spanning a large part of the log (a TRIM of many GiB), by its bit itself being
// durable. Either way the data write that follows can never outrun what covers it.
//
// Which bits are durable, and the batches that make them so, are durable-bits.ts. Every .psf
// write (batches, log transactions, lazy flushes, freeze, merge back) runs one at a time, in
// order, and the first failure is sticky. The moves between the bitmaps are
// change-record/moves.ts, the same ones a push without a tracker makes; the pages go to the
// ChangeRecord's bitmap store.
import {DiskIoError} from '../errors.js'
import {Bitmap} from '../psf/bitmap.js'
import {BITS_PER_PAGE, Region} from '../psf/layout.js'
import {clearInflightMove, freezeMove, mergeBackMove, nonEmptyPages, type BitmapStore} from '../change-record/moves.js'
import type {ActivityLogImage} from '../psf/activity-log.js'
import {ActivityLog, type ActivityLogStats, type ActivityLogStore} from './activity-log.js'
import {DurableBits, popcount} from './durable-bits.js'

/** The lazy bitmap flush runs this often (ms; VDREP_BITMAP_FLUSH_MS, for tests)... */
export const FLUSH_MS = Number(process.env.VDREP_BITMAP_FLUSH_MS) || 1000
/** ...or at once when this many bitmap pages hold bits not yet durable (bounds the next flush). */
export const UNFLUSHED_PAGES = 64
/** The timer that renews the activity log's lease and flushes the bitmap lazily (ms). */
const TICK_MS = 250
/** A request spanning more than this share of the log makes its bits durable instead. */
const WIDE_SHARE = 4

export interface DirtyLogStats extends ActivityLogStats {
  /** Blocks that went from clean to dirty. */
  newlyDirtied: number
  /** Batches that made bits durable before their data (no log, or a wide request). */
  batches: number
  /** Lazy flushes of the bitmap (activity log). */
  lazyFlushes: number
  pageWrites: number
}

/** The activity log a tracker's dirty log keeps (none: every new bit is durable before its data). */
export interface DirtyLogOptions {
  al?: {image: ActivityLogImage; extentBlocks: number; store: ActivityLogStore}
}

export class DirtyLog {
  private readonly counts = {newlyDirtied: 0, batches: 0, lazyFlushes: 0, pageWrites: 0}
  readonly al: ActivityLog | null = null
  /** Bitmap pages that got bits since their last write (activity log: flushed lazily). */
  private readonly unflushed = new Set<number>()
  private timer: NodeJS.Timeout | null = null
  private lastFlushMs = Date.now()
  private wide = Infinity
  /**
   * Writes go through the log only while a crash could be followed by a check against the
   * block hash index (the tracker sets it: no index, no log, every new bit durable first).
   */
  useLog = false
  private readonly bits: DurableBits
  private chain: Promise<unknown> = Promise.resolve()
  private failure: Error | null = null

  constructor(
    private readonly store: BitmapStore,
    readonly active: Bitmap,
    readonly inflight: Bitmap,
    opts: DirtyLogOptions = {},
  ) {
    this.bits = new DurableBits(store, active, (fn) => this.serial(fn), this.counts)
    if (opts.al) {
      const {image, extentBlocks, store} = opts.al
      this.al = new ActivityLog(image, extentBlocks, active.blockCount, {
        store,
        persistExtents: (extents) => this.persistExtents(extents, extentBlocks),
        serial: (fn) => this.serial(fn),
      })
      this.wide = Math.max(1, Math.floor(this.al.capacity / WIDE_SHARE)) * extentBlocks
      this.timer = setInterval(() => this.tick(), TICK_MS)
      this.timer.unref()
    }
  }

  get stats(): DirtyLogStats {
    const al = this.al?.stats ?? {alTransactions: 0, alHotted: 0, alEvicted: 0, alWaits: 0, alWaitMs: 0}
    return {...this.counts, ...al}
  }

  /** Stop the timer (the tracker's stop, after flushAll). */
  close(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  /** The first .psf write failure; from then on nothing more is accepted. */
  get broken(): Error | null {
    return this.failure
  }

  /**
   * Mark blocks [first, last] dirty in the active bitmap. Resolves once every one of them
   * is durable in the .psf; returns undefined when they already are (nothing to wait for).
   */
  mark(first: number, last: number): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure)
    if (this.useLog && this.al !== null && last - first < this.wide) return this.markLogged(first, last)
    return this.bits.mark(first, last)
  }

  /** With the log: bits in memory (pages noted for the lazy flush), extents hot. */
  private markLogged(first: number, last: number): Promise<void> | undefined {
    const act = this.active.bits
    for (let b = first; b <= last;) {
      const i = b >>> 3
      if ((b & 7) === 0 && b + 7 <= last) {
        const fresh = ~act[i] & 0xff
        if (fresh !== 0) {
          act[i] = 0xff
          this.counts.newlyDirtied += popcount(fresh)
          this.unflushed.add(Math.floor(b / BITS_PER_PAGE))
        }
        b += 8
        continue
      }
      const m = 1 << (b & 7)
      if ((act[i] & m) === 0) {
        act[i] |= m
        this.counts.newlyDirtied++
        this.unflushed.add(Math.floor(b / BITS_PER_PAGE))
      }
      b++
    }
    if (this.unflushed.size >= UNFLUSHED_PAGES) this.flushLazy().catch(() => {})
    return (this.al as ActivityLog).enter(first, last)
  }

  /**
   * Freeze: in-flight = active, then active = 0 (freezeMove: every block stays dirty on disk in
   * one bitmap or the other). The caller keeps writes out meanwhile. Returns a copy of the frozen set.
   */
  freeze(): Promise<Bitmap> {
    return this.serial(async () => {
      this.counts.pageWrites += await freezeMove(this.store, this.active, this.inflight)
      this.bits.durable.clearAll()
      this.unflushed.clear() // every bit is in the in-flight pages now, durable
      return new Bitmap(this.inflight.blockCount, Uint8Array.from(this.inflight.bits))
    })
  }

  /** A failed push: active |= in-flight (durable first), then in-flight = 0. Returns the count handed back. */
  mergeBack(): Promise<number> {
    return this.serial(async () => {
      // Durable in the in-flight pages until the active ones land, so durable at once.
      this.bits.durable.merge(this.inflight)
      this.counts.pageWrites += 2 * nonEmptyPages(this.inflight).length
      return mergeBackMove(this.store, this.active, this.inflight)
    })
  }

  /** A proved push: in-flight = 0. Returns how many blocks it held. */
  clearInflight(): Promise<number> {
    return this.serial(() => {
      this.counts.pageWrites += nonEmptyPages(this.inflight).length
      return clearInflightMove(this.store, this.inflight)
    })
  }

  /** Rewrite given pages of the active bitmap (bad pages found at start, now all dirty). */
  rewriteActive(pages: number[]): Promise<void> {
    return this.serial(() => this.writePages(Region.ACTIVE, this.active, pages))
  }

  /** Wait until every batch, transaction and .psf write queued so far has finished. */
  async settle(): Promise<void> {
    await this.bits.settle()
    await this.al?.settle()
    await this.chain.catch(() => {})
  }

  /** Every bit set so far durable in the .psf (a clean stop, the end of a check). */
  async flushAll(): Promise<void> {
    await this.settle()
    await this.flushLazy()
    await this.settle()
  }

  /** The lazy flush: the pages with bits not durable yet, one write each, one fdatasync. */
  flushLazy(): Promise<void> {
    this.lastFlushMs = Date.now()
    const pages = [...this.unflushed]
    this.unflushed.clear()
    if (pages.length === 0) return Promise.resolve()
    this.counts.lazyFlushes++
    return this.serial(() => this.bits.persistPages(pages.filter((p) => this.bits.undurableIn(p * BITS_PER_PAGE, (p + 1) * BITS_PER_PAGE - 1))))
  }

  private tick(): void {
    if (this.failure) return
    this.al?.tick()
    if (this.unflushed.size > 0 && Date.now() - this.lastFlushMs >= FLUSH_MS) this.flushLazy().catch(() => {})
  }

  /** Extents leaving the log's cover: their bits not durable yet are written (in the serial order). */
  private persistExtents(extents: number[], extentBlocks: number): Promise<void> {
    const pages = new Set<number>()
    for (const e of extents) {
      const first = e * extentBlocks
      const last = Math.min(this.active.blockCount, first + extentBlocks) - 1
      if (!this.bits.undurableIn(first, last)) continue
      for (let p = Math.floor(first / BITS_PER_PAGE); p <= Math.floor(last / BITS_PER_PAGE); p++) pages.add(p)
    }
    return this.bits.persistPages([...pages])
  }

  private async writePages(region: typeof Region.ACTIVE | typeof Region.INFLIGHT, bm: Bitmap, pages: number[]): Promise<void> {
    if (pages.length === 0) return
    // VDREP_TEST_PLANT_SKIP_BITMAP_SYNC=1 is a deliberately broken build for the power-cut
    // check (test/integration/powercut.test.ts): the bits written but not synced before the data.
    await this.store.writeBitmap(region, bm, pages, {sync: process.env.VDREP_TEST_PLANT_SKIP_BITMAP_SYNC !== '1'})
    this.counts.pageWrites += pages.length
  }

  /** Run .psf writes one at a time; the first failure breaks the log for good. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.failure) throw this.failure
      try {
        return await fn()
      } catch (err) {
        this.failure ??= new DiskIoError(`cannot update the change record in ${this.store.path}: ${(err as Error).message}; writes are refused from now on`, {
          cause: err,
          hint: 'fix the storage holding the .psf and restart the tracker',
        })
        throw this.failure
      }
    }
    const p = this.chain.then(run, run)
    this.chain = p.catch(() => {})
    return p
  }
}
