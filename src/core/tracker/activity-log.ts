// The tracker's activity log (after DRBD's): a small durable set of "hot" extents. A write into
// a hot extent costs no metadata I/O: its dirty bit is set in memory and reaches the .psf
// lazily (dirty-log.ts). A write into a cold extent waits for one transaction that makes the
// extent hot durably (concurrent cold writes share it: group commit): the least recently used
// extent is evicted, its dirty bits made durable first, then the log pages are written and
// synced. So every block whose bit may be missing from the .psf lies in a hot extent, and after
// a crash only those extents are checked against the block hash index (tracker/record.ts).
//
// The transaction also writes a lease: no data write starts later than LEASE_MARGIN_MS before
// its end without a new transaction. A disk whose mtime or ctime is past the lease after a
// crash was written by something else (or the .psf is an older copy): the whole disk is checked.
import {alPageOfSlot, EMPTY_SLOT, type ActivityLogImage} from '../psf/activity-log.js'
import {bootId} from '../util/boot.js'
import {slotsToFill} from './lru-slots.js'

/** How long a transaction's lease runs... */
export const LEASE_MS = 3000
/** ...of which the last part is kept free of new writes (a write queued in the thread pool). */
export const LEASE_MARGIN_MS = 1000

/** Writes remembered to tell a stream whose requests arrive out of order (a queue's depth). */
const RECENT = 16

/** Extents made hot ahead of a sequential stream per transaction (at most a quarter of the log). */
const SEQ_AHEAD = 16

export interface ActivityLogStore {
  /** Write the given pages of the activity log, then one datasync. */
  writeActivityLog(image: ActivityLogImage, pages: Iterable<number>): Promise<void>
}

export interface ActivityLogDeps {
  store: ActivityLogStore
  /** Make the dirty bits of these extents durable: they are about to leave the log's cover. */
  persistExtents(extents: number[]): Promise<void>
  /** Run a .psf write in the dirty log's one-at-a-time order (its failure is sticky there). */
  serial<T>(fn: () => Promise<T>): Promise<T>
  /** The clock (tests). */
  now?: () => number
}

export interface ActivityLogStats {
  /** Transactions written (each one page write or more and one fdatasync). */
  alTransactions: number
  /** Extents made hot, and hot extents evicted to make room. */
  alHotted: number
  alEvicted: number
  /** Data writes that waited for a transaction, and their summed wait (ms): the log's cost to the VM. */
  alWaits: number
  alWaitMs: number
}

interface Txn {
  extents: Set<number>
  /** Writes waiting for it, and the sum of the times (ms) they began to wait. */
  waiters: number
  waitSince: number
  done: Promise<void>
  resolve: () => void
  reject: (err: Error) => void
}

function newTxn(): Txn {
  let resolve!: () => void
  let reject!: (err: Error) => void
  const done = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  done.catch(() => {})
  return {extents: new Set(), waiters: 0, waitSince: 0, done, resolve, reject}
}

export class ActivityLog {
  readonly stats: ActivityLogStats = {alTransactions: 0, alHotted: 0, alEvicted: 0, alWaits: 0, alWaitMs: 0}
  readonly extentCount: number
  /** The slot of each durably hot extent, else -1. */
  private readonly slotOf: Int32Array
  private readonly lastUse: Float64Array
  private clock = 0
  /** No data write may start at or after this time (ms) without a new transaction. */
  private okUntil = 0
  private next: Txn | null = null
  private flushing: Txn | null = null
  private usedSinceTick = false
  /**
   * The first blocks and the ends (last + 1) of the last RECENT writes: a write that starts where
   * one of them ended, or ends where one began, continues a stream. qemu's NBD client (a VM's)
   * sends a queue's writes out of offset order, so an exact match on the one last write missed
   * the stream: qemu-img bench -d 16 -S 64k into a cold log, 192 MiB, made 14-21 transactions
   * and 153-249 writes wait (193-509 ms in all) against nbdcopy's 4 and 16 (issue 23).
   */
  private readonly recentStarts = new Float64Array(RECENT).fill(-1)
  private readonly recentEnds = new Float64Array(RECENT).fill(-1)
  private recentAt = 0
  private readonly ahead: number
  private readonly now: () => number
  /** The boot each lease is written in (log-cover.ts tells a host crash from a killed tracker by it). */
  private readonly boot = bootId()

  constructor(
    readonly image: ActivityLogImage,
    /** Blocks per extent (a power of two). */
    readonly extentBlocks: number,
    blockCount: number,
    private readonly deps: ActivityLogDeps,
  ) {
    this.now = deps.now ?? Date.now
    this.ahead = Math.min(SEQ_AHEAD, Math.floor(image.slots.length / 4))
    this.extentCount = Math.ceil(blockCount / extentBlocks)
    this.slotOf = new Int32Array(this.extentCount).fill(-1)
    this.lastUse = new Float64Array(image.slots.length)
    image.slots.forEach((e, s) => {
      if (e !== EMPTY_SLOT && e < this.extentCount) this.slotOf[e] = s
      else image.slots[s] = EMPTY_SLOT
    })
  }

  /** Slots of the log: the most extents hot at once. */
  get capacity(): number {
    return this.image.slots.length
  }

  /** Extents hot now (durably). */
  get hotCount(): number {
    let n = 0
    for (const e of this.image.slots) if (e !== EMPTY_SLOT && this.slotOf[e] >= 0) n++
    return n
  }

  /**
   * Before a data write into blocks [first, last], whose bits are set in memory: undefined
   * when every extent is hot under a running lease (no I/O), else the transaction to wait for.
   */
  enter(first: number, last: number): Promise<void> | undefined {
    const e0 = Math.floor(first / this.extentBlocks)
    const e1 = Math.floor(last / this.extentBlocks)
    this.usedSinceTick = true
    const leaseOk = this.now() < this.okUntil
    let wait: Txn | undefined
    let waits: Set<Txn> | undefined
    for (let e = e0; e <= e1; e++) {
      const s = this.slotOf[e]
      if (s >= 0 && leaseOk) {
        this.lastUse[s] = ++this.clock
        continue
      }
      const t = this.txnFor(e, s >= 0)
      if (wait === undefined) wait = t
      else if (wait !== t) (waits ??= new Set([wait])).add(t)
    }
    // A sequential stream: once the extent half a window ahead of it is cold, the next window
    // (`ahead` extents from the first cold one) is made hot in one transaction nobody waits for.
    // The stream never waited for these (alWaits counts the writes that did: one group, at the
    // first write of a cold start); a full new window per transaction instead of topping up
    // the old one halves the transactions (each a page write and an fdatasync, ~1-12 ms here).
    // Next to a recent write, in an extent already hot: a random write that lands in a cold
    // extent or far from the writes before it starts no window.
    const prefetch = this.slotOf[e1] >= 0 && this.nextToRecent(first, last)
    if (prefetch && this.ahead > 0) {
      const probe = Math.min(this.extentCount - 1, e1 + Math.max(1, this.ahead >>> 1))
      if (probe > e1 && this.slotOf[probe] < 0) {
        let from = e1 + 1
        while (from < this.extentCount && this.slotOf[from] >= 0) from++
        for (let e = from; e < from + this.ahead && e < this.extentCount; e++) if (this.slotOf[e] < 0) this.txnFor(e, false)
      }
    }
    this.recentStarts[this.recentAt] = first
    this.recentEnds[this.recentAt] = last + 1
    this.recentAt = (this.recentAt + 1) % RECENT
    if (wait === undefined) return undefined
    // Counted on the transaction that ends last (the one not yet flushing, when there are two).
    const ends = waits === undefined ? wait : ([...waits].find((t) => t !== this.flushing) ?? wait)
    ends.waiters++
    ends.waitSince += this.now()
    this.stats.alWaits++
    if (waits === undefined) return wait.done
    return Promise.all([...waits].map((t) => t.done)).then(() => {})
  }

  private nextToRecent(first: number, last: number): boolean {
    for (let k = 0; k < RECENT; k++) if (this.recentEnds[k] === first || this.recentStarts[k] === last + 1) return true
    return false
  }

  /** Timer: a log in use gets a new lease before the running one ends (no write waits for it). */
  tick(): void {
    if (this.usedSinceTick && this.next === null && this.flushing === null && this.now() > this.okUntil - LEASE_MARGIN_MS) this.collecting()
    this.usedSinceTick = false
  }

  /** Resolves once no transaction is queued or running. */
  async settle(): Promise<void> {
    while (this.next || this.flushing) await (this.flushing ?? this.next)?.done.catch(() => {})
  }

  private txnFor(e: number, hot: boolean): Txn {
    if (this.flushing && (hot || this.flushing.extents.has(e))) return this.flushing
    const t = this.collecting()
    if (!hot) t.extents.add(e)
    return t
  }

  private collecting(): Txn {
    if (this.next === null) {
      this.next = newTxn()
      // Every request already buffered on the sockets joins before the transaction starts.
      if (this.flushing === null) setImmediate(() => this.startFlush())
    }
    return this.next
  }

  private startFlush(): void {
    if (this.flushing !== null || this.next === null) return
    const txn = this.next
    this.next = null
    this.flushing = txn
    this.deps
      .serial(() => this.commit(txn))
      // Not flushing any more before a waiter runs: a write it lets in must not join this one.
      .then(
        () => {
          this.flushing = null
          this.stats.alWaitMs += txn.waiters * this.now() - txn.waitSince
          txn.resolve()
        },
        (err: Error) => {
          this.flushing = null
          txn.reject(err)
        },
      )
      .finally(() => {
        if (this.next) this.startFlush()
      })
  }

  /** One transaction: victims' bits durable, then the log pages with the new extents and lease. */
  private async commit(txn: Txn): Promise<void> {
    const want = [...txn.extents].filter((e) => this.slotOf[e] < 0)
    const order = slotsToFill(want.length, this.image.slots, this.slotOf, this.lastUse)
    // More cold extents at once than the log holds (a TRIM of many GiB): the rest are not made
    // hot; their bits are made durable instead, as without a log.
    const fit = want.slice(0, order.length)
    const overflow = want.slice(order.length)
    const assign: Array<[number, number]> = []
    const evicted: number[] = []
    fit.forEach((e, k) => {
      const s = order[k]
      const old = this.image.slots[s]
      if (old !== EMPTY_SLOT) {
        this.slotOf[old] = -1 // from now on a write into it waits for a later transaction
        evicted.push(old)
      }
      assign.push([e, s])
    })
    if (evicted.length + overflow.length > 0) await this.deps.persistExtents([...evicted, ...overflow])
    const start = this.now()
    const pages = new Set<number>([0])
    for (const [e, s] of assign) {
      this.image.slots[s] = e
      pages.add(alPageOfSlot(s))
    }
    this.image.seq++
    this.image.leaseEndMs = start + LEASE_MS
    this.image.bootId = this.boot
    await this.deps.store.writeActivityLog(
      this.image,
      [...pages].sort((a, b) => a - b),
    )
    for (const [e, s] of assign) {
      this.slotOf[e] = s
      this.lastUse[s] = ++this.clock
    }
    this.okUntil = this.image.leaseEndMs - LEASE_MARGIN_MS
    this.stats.alTransactions++
    this.stats.alHotted += assign.length
    this.stats.alEvicted += evicted.length
  }
}
