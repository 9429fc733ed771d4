// One point in time per push. `freeze` moves the active bitmap into the in-flight set while
// no write runs; from then until the push completes, a write about to overwrite an in-flight
// block first copies the block's old contents to the side file, and `read` serves in-flight
// blocks as they were at the freeze (side file if preserved, else the disk under a range lock
// so an overlapping write waits). `complete(ok)` clears the in-flight set; a failure, the
// owner hanging up, or the side file reaching its cap hands the blocks back to the active set.
import {StateError, UsageError, VdrepError} from '../errors.js'
import type {Bitmap} from '../psf/bitmap.js'
import type {NbdBackend} from './nbd/backend.js'
import {RangeLocks, type Unlock} from './nbd/range-lock.js'
import {CowStore} from './cow-store.js'
import type {DirtyLog} from './dirty-log.js'
import type {WriteGate} from './write-gate.js'
import {formatBytes} from '../util/units.js'
import {CutHold, type HoldOutcome} from './cut-hold.js'

/** Most bytes one `read` may ask for. */
export const MAX_READ_BYTES = 32 << 20

export interface Geometry {
  blockSize: number
  diskSize: number
  blockCount: number
}

export interface FreezerOptions {
  cowPath: string
  cowLimit: number
  log?: (level: 'warn' | 'info', line: string) => void
}

class FrozenSet {
  readonly locks = new RangeLocks()
  cancelled: string | null = null
  ending: Promise<number> | null = null
  /** A group push's cut: the write gate stays closed until it is released (cut-hold.ts). */
  hold: CutHold | null = null
  constructor(
    readonly owner: number,
    readonly cow: CowStore,
    readonly blocks: number,
    readonly startedMs: number,
    /** Keep old contents of frozen blocks (a push); false for a full sync that reads the disk itself. */
    readonly preserve: boolean,
  ) {}
}

export interface FreezeInfo {
  owner: number
  blocks: number
  cowBytes: number
  cowLimit: number
  cancelled: string | null
  startedMs: number
  preserve: boolean
}

export class Freezer {
  private current: FrozenSet | null = null
  /** Why each connection's last freeze was cancelled, until it hangs up (for its next request). */
  private readonly cancelledFor = new Map<number, string>()
  /** Freezes asked for and not yet held or refused (a verification must not start under them). */
  private starting = 0
  private idleWaiters: Array<() => void> = []

  constructor(
    private readonly log: DirtyLog,
    private readonly gate: WriteGate,
    private readonly disk: NbdBackend,
    private readonly geo: Geometry,
    private readonly opts: FreezerOptions,
  ) {}

  /** A freeze is held (writes check this before looking further). */
  get active(): boolean {
    return this.current !== null
  }

  get info(): FreezeInfo | null {
    const f = this.current
    return (
      f && {
        owner: f.owner,
        blocks: f.blocks,
        cowBytes: f.cow.bytes,
        cowLimit: f.cow.limit,
        cancelled: f.cancelled,
        startedMs: f.startedMs,
        preserve: f.preserve,
      }
    )
  }

  /** A freeze is held or being taken: the tracker's verification waits (verifier.ts). */
  get busy(): boolean {
    return this.starting > 0 || this.current !== null
  }

  /** Resolves once no freeze is held or being taken. */
  async idle(): Promise<void> {
    while (this.busy) await new Promise<void>((resolve) => this.idleWaiters.push(resolve))
  }

  /**
   * Freeze for `owner` (a control connection); returns the frozen set. `holdMs` > 0 (a group
   * push): the write gate stays closed after the freeze, for at most that long, until `release`.
   */
  async freeze(owner: number, preserve = true, holdMs = 0): Promise<Bitmap> {
    this.checkFree()
    this.starting++
    try {
      const reopen = await this.gate.close()
      let held = false
      try {
        this.checkFree()
        const bitmap = await this.log.freeze()
        const f = new FrozenSet(owner, new CowStore(this.opts.cowPath, this.opts.cowLimit), bitmap.count(), Date.now(), preserve)
        this.current = f
        this.cancelledFor.delete(owner)
        held = holdMs > 0
        if (held)
          f.hold = new CutHold(reopen, holdMs, () =>
            this.opts.log?.('warn', `a group push held this disk's writes for its cut longer than its ${holdMs} ms lease; writes resumed, that push must fail`),
          )
        return bitmap
      } finally {
        if (!held) reopen()
      }
    } finally {
      this.starting--
      this.wakeIdle()
    }
  }

  /** A group push's cut is taken on every member: let writes run again (cut-hold.ts). */
  release(owner: number): HoldOutcome & {held: boolean} {
    const f = this.owned(owner, true)
    if (!f.hold) return {held: false, expired: false, heldMs: 0}
    return {held: true, ...f.hold.release()}
  }

  private wakeIdle(): void {
    if (this.busy) return
    const w = this.idleWaiters
    this.idleWaiters = []
    for (const f of w) f()
  }

  /** Blocks [first, first+count) as they were at the freeze; all must be in the frozen set. */
  async read(owner: number, first: number, count: number): Promise<Buffer> {
    const f = this.owned(owner)
    if (!f.preserve)
      throw new StateError('CONTROL_NO_PRESERVE', 'this freeze keeps no old contents (it was asked with preserve: false); read the disk directly')
    const {blockSize: bs, diskSize, blockCount} = this.geo
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(count) || first < 0 || count < 1 || first + count > blockCount) {
      throw new UsageError('CONTROL_BAD_RANGE', `read of ${count} blocks at block ${first} is outside the disk's ${blockCount} blocks`)
    }
    if (count * bs > MAX_READ_BYTES)
      throw new UsageError('CONTROL_BAD_RANGE', `read of ${count} blocks is more than the ${MAX_READ_BYTES}-byte limit of one read`)
    for (let b = first; b < first + count; b++) {
      if (!this.log.inflight.get(b))
        throw new UsageError('CONTROL_NOT_FROZEN', `block ${b} is not in the frozen set; only frozen blocks can be read as of the freeze`)
    }
    const start = first * bs
    const len = Math.min(count * bs, diskSize - start)
    const unlock = await f.locks.acquire(start, len, false)
    try {
      if (f.cancelled || this.current !== f) throw this.cancelledError(f)
      // Allocated only when the range is pieced together: a range the disk gives in one read
      // (no kept old contents in it, the usual case) is that read's buffer, not a second copy of
      // up to MAX_READ_BYTES (issue 21: the tracker's peak memory during a push).
      let out: Buffer | undefined
      for (let b = first; b < first + count;) {
        const kept = await f.cow.read(b)
        if (kept) {
          out ??= Buffer.allocUnsafe(len)
          kept.copy(out, (b - first) * bs)
          b++
          continue
        }
        let e = b
        while (e + 1 < first + count && !f.cow.has(e + 1)) e++
        const off = b * bs
        const data = await this.disk.read(off, Math.min((e + 1) * bs, diskSize) - off)
        if (b === first && e === first + count - 1 && data.length === len) out = data
        else data.copy((out ??= Buffer.allocUnsafe(len)), off - start)
        b = e + 1
      }
      // Checked again now that the bytes are in: a cancel while they were read lets writes skip
      // the range lock (beforeWrite), so one may have landed under this read. Those bytes are
      // not the point in time; the push must fail rather than ship them.
      if (f.cancelled || this.current !== f) throw this.cancelledError(f)
      return out as Buffer
    } finally {
      unlock()
    }
  }

  /** The push ended: ok clears the frozen set, otherwise it goes back into the active set. */
  async complete(owner: number, ok: boolean): Promise<{cleared: number; mergedBack: number}> {
    // A failed push whose freeze was already handed back (cancelled): nothing left to do.
    if (!ok && (this.current === null || (this.current.owner === owner && this.current.ending)) && this.cancelledFor.has(owner)) {
      if (this.current) await this.current.ending?.catch(() => {})
      return {cleared: 0, mergedBack: 0}
    }
    const f = this.owned(owner, !ok)
    if (ok) {
      if (f.cancelled || f.ending) throw this.cancelledError(f)
      return {cleared: await this.end(f, 'clear'), mergedBack: 0}
    }
    return {cleared: 0, mergedBack: await this.end(f, 'merge')}
  }

  /** The owner hung up without `complete`: treat it as a failed push. */
  ownerGone(owner: number): void {
    this.cancelledFor.delete(owner)
    const f = this.current
    if (!f || f.owner !== owner) return
    void this.end(f, 'merge').then(
      (n) => this.opts.log?.('warn', `the push holding the freeze disconnected without completing; ${n} blocks were handed back to the change record`),
      (err: Error) => this.opts.log?.('warn', `handing back the frozen blocks failed: ${err.message}`),
    )
  }

  /** Tracker shutdown: hand any frozen blocks back and wait for it. */
  async abort(): Promise<void> {
    const f = this.current
    if (f) await this.end(f, 'merge')
  }

  /**
   * Called by a write inside the gate, after its blocks are durably dirty, for blocks
   * [first, last]: preserves the old contents of frozen blocks it is about to overwrite.
   * Returns the range lock to release once the data is written, or undefined.
   */
  async beforeWrite(first: number, last: number): Promise<Unlock | undefined> {
    const f = this.current
    if (!f || !f.preserve || f.cancelled || !this.needsPreserve(f, first, last)) return undefined
    const bs = this.geo.blockSize
    const unlock = await f.locks.acquire(first * bs, (last - first + 1) * bs, true)
    try {
      await this.preserve(f, first, last)
    } catch (err) {
      // The VM's write must not fail because of the push: the push fails instead.
      this.cancel(f, `keeping the old contents of a frozen block failed: ${(err as Error).message}`)
    }
    return unlock
  }

  private needsPreserve(f: FrozenSet, first: number, last: number): boolean {
    for (let b = first; b <= last; b++) if (this.log.inflight.get(b) && !f.cow.has(b)) return true
    return false
  }

  private async preserve(f: FrozenSet, first: number, last: number): Promise<void> {
    const {blockSize: bs, diskSize} = this.geo
    for (let b = first; b <= last; b++) {
      if (f.cancelled) return
      if (!this.log.inflight.get(b) || f.cow.has(b)) continue
      let e = b
      while (e + 1 <= last && this.log.inflight.get(e + 1) && !f.cow.has(e + 1)) e++
      const off = b * bs
      const len = Math.min((e + 1) * bs, diskSize) - off
      if (!f.cow.fits(len)) {
        this.cancel(f, `the copy-on-write side file reached its limit of ${formatBytes(f.cow.limit)} (--cow-limit)`)
        return
      }
      await f.cow.preserveRun(b, bs, await this.disk.read(off, len))
      b = e
    }
  }

  private cancel(f: FrozenSet, reason: string): void {
    if (f.cancelled) return
    f.cancelled = reason
    this.cancelledFor.set(f.owner, reason)
    this.opts.log?.('warn', `the freeze was cancelled: ${reason}; the push must fail, and its ${f.blocks} blocks go back to the change record`)
    void this.end(f, 'merge').catch((err: Error) => this.opts.log?.('warn', `handing back the frozen blocks failed: ${err.message}`))
  }

  /** End a freeze once, with no write running: clear or merge back, drop the side file. */
  private end(f: FrozenSet, mode: 'clear' | 'merge'): Promise<number> {
    // A cut still held (its owner hung up, or the tracker stops) lets writes run first: the gate is the hold.
    f.hold?.release()
    f.ending ??= this.gate.exclusive(async () => {
      const unlock = await f.locks.acquire(0, Number.MAX_SAFE_INTEGER, true)
      try {
        return mode === 'clear' ? await this.log.clearInflight() : await this.log.mergeBack()
      } finally {
        if (this.current === f) this.current = null
        await f.cow.discard().catch(() => {})
        unlock()
        this.wakeIdle()
      }
    })
    return f.ending
  }

  private checkFree(): void {
    if (this.log.broken) throw this.log.broken
    const f = this.current
    if (f) {
      const why = f.ending
        ? 'the previous freeze is still being handed back; retry in a moment'
        : 'another client holds the freeze (a push or a full sync is running)'
      throw new StateError('FREEZE_BUSY', `cannot freeze: ${why}`)
    }
  }

  private owned(owner: number, allowEnding = false): FrozenSet {
    const f = this.current
    const why = this.cancelledFor.get(owner)
    if ((!f || f.owner !== owner) && why) throw this.cancelledError(null, why)
    if (!f) throw new StateError('CONTROL_NO_FREEZE', 'no freeze is held; call freeze first (or the tracker already handed the blocks back)')
    if (f.owner !== owner) throw new StateError('CONTROL_NOT_OWNER', 'the freeze belongs to another control connection')
    if (!allowEnding && f.cancelled) throw this.cancelledError(f)
    return f
  }

  private cancelledError(f: FrozenSet | null, why?: string): VdrepError {
    const what = f ? `its ${f.blocks} blocks` : 'its blocks'
    return new StateError('FREEZE_CANCELLED', `the freeze was cancelled: ${why ?? f?.cancelled ?? 'it ended'}; ${what} went back to the change record`, {
      hint: 'the push must fail; the next push ships these blocks (raise --cow-limit of `vdrep track` if the cap was hit)',
    })
  }
}
