// Which dirty bits of the active bitmap are durable in the .psf, and the batches that make new
// ones durable before their data is written (a tracker without an activity log, or a request
// too wide for the log). Group commit: blocks newly dirtied while a batch is being written join
// the next batch; a batch costs one page write per touched page and one fdatasync. Blocks
// already durably dirty cost a bitmap lookup and nothing else (a set bit that is not durable
// yet waits for the batch that writes its page). Memory is bounded by the bitmaps, whatever
// the range: a TRIM of the whole disk marks it byte by byte.
import {Bitmap} from '../psf/bitmap.js'
import {BITS_PER_PAGE, Region} from '../psf/layout.js'
import type {BitmapStore} from '../change-record/moves.js'

const PAGE_BYTES = BITS_PER_PAGE / 8

export function popcount(v: number): number {
  let n = 0
  for (let x = v; x; x &= x - 1) n++
  return n
}

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

export interface DurableCounts {
  newlyDirtied: number
  batches: number
  pageWrites: number
}

export class DurableBits {
  /** Set bits of `active` known to be durable in the .psf (a subset of active). */
  readonly durable: Bitmap
  private next: Batch | null = null
  private flushing: Batch | null = null

  constructor(
    private readonly store: BitmapStore,
    private readonly active: Bitmap,
    /** The dirty log's one-at-a-time order of .psf writes. */
    private readonly serial: <T>(fn: () => Promise<T>) => Promise<T>,
    private readonly counts: DurableCounts,
  ) {
    // What was read from the .psf is durable (a page that failed its CRC reads as all dirty).
    this.durable = new Bitmap(active.blockCount, Uint8Array.from(active.bits))
  }

  /**
   * Mark blocks [first, last] in `active`; resolves once every one of them is durable in the
   * .psf, or undefined when they already are (nothing to wait for).
   */
  mark(first: number, last: number): Promise<void> | undefined {
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
          this.counts.newlyDirtied += popcount(fresh)
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
        this.counts.newlyDirtied++
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

  /** Wait until no batch is queued or running. */
  async settle(): Promise<void> {
    while (this.next || this.flushing) await (this.flushing ?? this.next)?.done.catch(() => {})
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
    this.counts.batches++
    const pages = [...batch.pages]
    this.serial(() => this.persistPages(pages))
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

  /** Whether blocks [first, last] hold a bit set in memory and not durable (whole bytes checked). */
  undurableIn(first: number, last: number): boolean {
    const act = this.active.bits
    const dur = this.durable.bits
    const end = Math.min(act.length - 1, last >>> 3)
    for (let i = first >>> 3; i <= end; i++) if ((act[i] & ~dur[i]) !== 0) return true
    return false
  }

  /** Write these active pages as they are now, sync, and count what they held as durable. */
  async persistPages(pages: number[]): Promise<void> {
    if (pages.length === 0) return
    // The bits set now are all in what is written (bits are only cleared by a freeze, which
    // never runs beside this); bits set meanwhile wait for a later write.
    const snapshot = pages.map((p) => this.active.bits.slice(p * PAGE_BYTES, (p + 1) * PAGE_BYTES))
    // VDREP_TEST_PLANT_SKIP_BITMAP_SYNC=1: the power-cut check's deliberately broken build (bits not synced).
    await this.store.writeBitmap(Region.ACTIVE, this.active, pages, {sync: process.env.VDREP_TEST_PLANT_SKIP_BITMAP_SYNC !== '1'})
    this.counts.pageWrites += pages.length
    pages.forEach((p, k) => {
      const d = this.durable.bits
      const snap = snapshot[k]
      for (let j = 0, at = p * PAGE_BYTES; j < snap.length; j++, at++) d[at] |= snap[j]
    })
  }
}
