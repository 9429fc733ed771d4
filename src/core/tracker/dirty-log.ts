// The tracker's change record in memory and in the .psf: the active bitmap (new writes) and
// the in-flight bitmap (what a push is shipping). A block newly marked dirty is durable in
// the .psf before `mark` resolves, so the data write that follows can never outrun its bit.
//
// Group commit: blocks newly dirtied while a batch is being written join the next batch;
// a batch costs one page write per touched page and one fdatasync. Blocks already durably
// dirty cost a bitmap lookup and nothing else (a second bitmap says which set bits are
// durable; a set bit that is not yet waits for the batch that writes its page). Memory is
// bounded by the bitmaps, whatever the range: a TRIM of the whole disk marks it byte by byte.
// Every .psf write (batches, freeze, merge back) runs one at a time, in order, and the
// first failure is sticky. The moves between the bitmaps are change-record/moves.ts, the
// same ones a push without a tracker makes; the pages go to the ChangeRecord's bitmap store.
import {DiskIoError} from '../errors.js'
import {Bitmap} from '../psf/bitmap.js'
import {BITS_PER_PAGE, Region} from '../psf/layout.js'
import {clearInflightMove, freezeMove, mergeBackMove, nonEmptyPages, type BitmapStore} from '../change-record/moves.js'

interface Batch {
  pages: Set<number>
  done: Promise<void>
  resolve: () => void
  reject: (err: Error) => void
}

function newBatch(): Batch {
  let resolve!: () => void
  let reject!: (err: Error) => void
  const done = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  done.catch(() => {}) // waiters see the failure; nobody waiting is fine too
  return {pages: new Set(), done, resolve, reject}
}

export interface DirtyLogStats {
  /** Blocks that went from clean to dirty (each cost a place in a batch). */
  newlyDirtied: number
  batches: number
  pageWrites: number
}

const PAGE_BYTES = BITS_PER_PAGE / 8

function popcount(v: number): number {
  let n = 0
  for (let x = v; x; x &= x - 1) n++
  return n
}

export class DirtyLog {
  readonly stats: DirtyLogStats = {newlyDirtied: 0, batches: 0, pageWrites: 0}
  private next: Batch | null = null
  private flushing: Batch | null = null
  /** Set bits of `active` known to be durable in the .psf (a subset of active). */
  private readonly durable: Bitmap
  private chain: Promise<unknown> = Promise.resolve()
  private failure: Error | null = null

  constructor(
    private readonly store: BitmapStore,
    readonly active: Bitmap,
    readonly inflight: Bitmap,
  ) {
    // What was read from the .psf is durable (a page that failed its CRC reads as all dirty).
    this.durable = new Bitmap(active.blockCount, Uint8Array.from(active.bits))
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
    const act = this.active.bits
    const dur = this.durable.bits
    let wait: Batch | undefined
    let waits: Set<Batch> | undefined
    const add = (b: Batch) => {
      if (wait === undefined) wait = b
      else if (wait !== b) (waits ??= new Set([wait])).add(b)
    }
    let b = first
    while (b <= last) {
      const i = b >>> 3
      if ((b & 7) === 0 && b + 7 <= last) {
        // A whole byte: eight blocks at once.
        if ((act[i] & dur[i]) === 0xff) {
          b += 8
          continue
        }
        const fresh = ~act[i] & 0xff
        if (fresh !== 0) {
          act[i] = 0xff
          this.stats.newlyDirtied += popcount(fresh)
          const batch = this.collecting()
          batch.pages.add(Math.floor(b / BITS_PER_PAGE))
          add(batch)
        }
        if ((~dur[i] & ~fresh & 0xff) !== 0) add(this.pendingFor(Math.floor(b / BITS_PER_PAGE)))
        b += 8
        continue
      }
      const m = 1 << (b & 7)
      if ((act[i] & m) === 0) {
        act[i] |= m
        this.stats.newlyDirtied++
        const batch = this.collecting()
        batch.pages.add(Math.floor(b / BITS_PER_PAGE))
        add(batch)
      } else if ((dur[i] & m) === 0) {
        add(this.pendingFor(Math.floor(b / BITS_PER_PAGE)))
      }
      b++
    }
    if (wait === undefined) return undefined
    if (waits === undefined) return wait.done
    return Promise.all([...waits].map((x) => x.done)).then(() => {})
  }

  /** The batch that will make the set bits of `page` durable: the latest one holding it. */
  private pendingFor(page: number): Batch {
    if (this.next?.pages.has(page)) return this.next
    if (this.flushing?.pages.has(page)) return this.flushing
    // Not expected (every set, non-durable bit has its page in a batch); writing it is safe.
    const batch = this.collecting()
    batch.pages.add(page)
    return batch
  }

  /**
   * Freeze: in-flight = active, then active = 0 (freezeMove: every block stays dirty on disk in
   * one bitmap or the other). The caller keeps writes out meanwhile. Returns a copy of the frozen set.
   */
  freeze(): Promise<Bitmap> {
    return this.serial(async () => {
      this.stats.pageWrites += await freezeMove(this.store, this.active, this.inflight)
      this.durable.clearAll()
      return new Bitmap(this.inflight.blockCount, Uint8Array.from(this.inflight.bits))
    })
  }

  /** A failed push: active |= in-flight (durable first), then in-flight = 0. Returns the count handed back. */
  mergeBack(): Promise<number> {
    return this.serial(async () => {
      // Durable in the in-flight pages until the active ones land, so durable at once.
      this.durable.merge(this.inflight)
      this.stats.pageWrites += 2 * nonEmptyPages(this.inflight).length
      return mergeBackMove(this.store, this.active, this.inflight)
    })
  }

  /** A proved push: in-flight = 0. Returns how many blocks it held. */
  clearInflight(): Promise<number> {
    return this.serial(() => {
      this.stats.pageWrites += nonEmptyPages(this.inflight).length
      return clearInflightMove(this.store, this.inflight)
    })
  }

  /** Rewrite given pages of the active bitmap (bad pages found at start, now all dirty). */
  rewriteActive(pages: number[]): Promise<void> {
    return this.serial(() => this.writePages(Region.ACTIVE, this.active, pages))
  }

  /** Wait until every batch and .psf write queued so far has finished. */
  async settle(): Promise<void> {
    while (this.next || this.flushing) {
      await (this.flushing ?? this.next)?.done.catch(() => {})
    }
    await this.chain.catch(() => {})
  }

  private collecting(): Batch {
    if (this.next === null) {
      this.next = newBatch()
      // Let every request already buffered on the sockets join before the batch starts.
      if (this.flushing === null) setImmediate(() => this.startFlush())
    }
    return this.next
  }

  private startFlush(): void {
    if (this.flushing !== null || this.next === null) return
    const batch = this.next
    this.next = null
    this.flushing = batch
    this.stats.batches++
    const pages = [...batch.pages]
    this.serial(async () => {
      // The bits set now are all in what is written next (bits are only cleared by a freeze,
      // which never runs beside a batch); bits set meanwhile wait for the next batch.
      const snapshot = pages.map((p) => this.active.bits.slice(p * PAGE_BYTES, (p + 1) * PAGE_BYTES))
      await this.writePages(Region.ACTIVE, this.active, pages)
      pages.forEach((p, k) => {
        const d = this.durable.bits
        const snap = snapshot[k]
        for (let j = 0, at = p * PAGE_BYTES; j < snap.length; j++, at++) d[at] |= snap[j]
      })
    })
      .then(
        () => batch.resolve(),
        (err: Error) => batch.reject(err),
      )
      .finally(() => {
        this.flushing = null
        // Requests that came during this batch's fdatasync go now, together.
        if (this.next) this.startFlush()
      })
  }

  private async writePages(region: typeof Region.ACTIVE | typeof Region.INFLIGHT, bm: Bitmap, pages: number[]): Promise<void> {
    if (pages.length === 0) return
    // VDREP_TEST_PLANT_SKIP_BITMAP_SYNC=1 is a deliberately broken build for the power-cut
    // check (test/integration/powercut.test.ts): the bits written but not synced before the data.
    await this.store.writeBitmap(region, bm, pages, {sync: process.env.VDREP_TEST_PLANT_SKIP_BITMAP_SYNC !== '1'})
    this.stats.pageWrites += pages.length
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
