// A running tracker's local verification: every block of the disk it serves is compared with
// the block hash index of the last sync, and the blocks that differ are marked through the
// dirty log (durable, like a write's bit). It runs behind the live export, so a VM booting
// after a crash does not wait for it: a VM write during the check is marked by the export
// anyway, and the check marks whatever else differs. It runs when the record cannot vouch for
// the disk (the last tracker was killed, the disk was written while none ran, another program
// wrote it while this one runs), after VERIFY_NEEDED is durable in the .psf, so a tracker
// killed during the check leaves a record that asks for it again.
//
// A check and a push take turns: a freeze waits for the check (the push says so), and a check
// waits for the push to end, so the index it compares with never changes under it (a commit
// rewrites the index of the blocks it shipped).
import type {ChangeRecord} from '../change-record/change-record.js'
import {checkOpenedDisk} from '../change-record/identity.js'
import {SourceDisk} from '../disk/source-disk.js'
import {compareBlocksWithIndex, compareWithIndex, type CompareProgress} from '../verification/compare-index.js'
import {Bitmap} from '../psf/bitmap.js'
import type {DirtyLog} from './dirty-log.js'
import type {Freezer} from './freezer.js'

export interface VerificationInfo {
  reason: string
  startedMs: number
  blocksDone: number
  blocksTotal: number
  blocksMarked: number
}

export interface VerificationDone {
  reason: string
  blocksScanned: number
  /** Blocks that differed from the index and were not marked yet. */
  blocksNewlyMarked: number
  seconds: number
}

export interface VerifierEvents {
  started?: (reason: string) => void
  done?: (d: VerificationDone) => void
  failed?: (err: Error) => void
}

export class Verifier {
  /** The reason of a check asked for and not started yet... */
  private pending: string | null = null
  /** ...and its blocks (null: every block). */
  private pendingBlocks: Bitmap | null = null
  private current: VerificationInfo | null = null
  private loop: Promise<void> | null = null
  private waiters: Array<() => void> = []
  private closed = false
  private lastFailure: Error | null = null
  private missed = false

  constructor(
    private readonly disk: string,
    private readonly record: ChangeRecord,
    private readonly log: DirtyLog,
    private readonly freezer: Freezer,
    private readonly events: VerifierEvents = {},
  ) {}

  /** A check is asked for or running: a freeze must wait. */
  get busy(): boolean {
    return this.pending !== null || this.current !== null
  }

  get info(): VerificationInfo | null {
    return this.current ?? (this.pending ? {reason: this.pending, startedMs: 0, blocksDone: 0, blocksTotal: 0, blocksMarked: 0} : null)
  }

  /** The last check failed (the record keeps VERIFY_NEEDED): pushes must not trust it. */
  get failure(): Error | null {
    return this.lastFailure
  }

  /** A check was asked for after close(): the tracker's clean stop must keep VERIFY_NEEDED. */
  get askedAfterClose(): boolean {
    return this.missed
  }

  /**
   * Ask for a check of `blocks` (default every block): VERIFY_NEEDED is durable in the .psf when
   * this resolves (a tracker killed before the check ends leaves a record that checks every block).
   */
  async request(reason: string, blocks: Bitmap | null = null): Promise<void> {
    if (this.closed) {
      this.missed = true
      return
    }
    await this.record.verifyNeeded()
    if (this.pending === null) this.pendingBlocks = blocks && new Bitmap(blocks.blockCount, Uint8Array.from(blocks.bits))
    else if (blocks === null) this.pendingBlocks = null
    else this.pendingBlocks?.merge(blocks)
    this.pending = this.pending ? `${this.pending}; ${reason}` : reason
    this.loop ??= this.run().finally(() => {
      this.loop = null
      this.wake()
    })
  }

  /** Resolves when no check is asked for or running. */
  async idle(): Promise<void> {
    while (this.busy && !this.closed) await new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  /** Tracker stop: no new check starts; the running one ends at its next chunk. */
  async close(): Promise<void> {
    this.closed = true
    this.pending = null
    await this.loop
    this.wake()
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  private async run(): Promise<void> {
    while (this.pending !== null && !this.closed) {
      // Checked and taken in one synchronous step: a freeze checks `busy` the same way.
      while (this.freezer.busy) await this.freezer.idle()
      if (this.pending === null || this.closed) break
      const reason = this.pending
      const blocks = this.pendingBlocks
      this.pending = null
      this.pendingBlocks = null
      this.current = {reason, startedMs: Date.now(), blocksDone: 0, blocksTotal: blocks ? blocks.count() : this.record.blockCount, blocksMarked: 0}
      this.events.started?.(reason)
      try {
        const done = await this.checkOnce(this.current, blocks)
        this.lastFailure = null
        // A request that came in meanwhile keeps the flag for its own check.
        if (this.pending === null && !this.closed) await this.record.verified()
        this.events.done?.(done)
      } catch (err) {
        this.lastFailure = err as Error
        this.events.failed?.(err as Error)
      } finally {
        this.current = null
        this.wake()
      }
    }
  }

  private async checkOnce(info: VerificationInfo, blocks: Bitmap | null): Promise<VerificationDone> {
    const t0 = performance.now()
    const h = this.record.header
    const source = await SourceDisk.open(this.disk)
    try {
      // The disk this tracker serves, not whatever was moved to its path since.
      checkOpenedDisk(this.record, this.disk, await source.stat(), source.size, {trackerRunning: true})
      const {hashes, badPages} = await this.record.readIndex()
      let newly = 0
      const ix = {
        source,
        path: this.disk,
        blockSize: h.blockSize,
        blockCount: this.record.blockCount,
        hashAlgo: h.hashAlgo,
        replicaId: h.replicaId,
        hashes,
        badPages,
        psfPath: this.record.path,
      }
      const changed = (b: number) => {
        if (!this.log.active.get(b) && !this.log.inflight.get(b)) newly++
        // A failed .psf write shows as log.broken below; the promise is not needed here.
        this.log.mark(b, b)?.catch(() => {})
      }
      const opts = {
        progress: (p: CompareProgress) => {
          info.blocksDone = p.blocksDone
          info.blocksMarked = p.blocksMarked
        },
        shouldStop: () => this.closed,
      }
      if (blocks) await compareBlocksWithIndex(ix, blocks, changed, opts)
      else await compareWithIndex(ix, changed, opts)
      // Every mark durable (its bit, not only its extent in the log) before the record is called verified.
      await this.log.flushAll()
      if (this.log.broken) throw this.log.broken
      return {
        reason: info.reason,
        blocksScanned: blocks ? info.blocksTotal : this.record.blockCount,
        blocksNewlyMarked: newly,
        seconds: (performance.now() - t0) / 1000,
      }
    } finally {
      await source.close()
    }
  }
}
