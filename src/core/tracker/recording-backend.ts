// The NBD backend `vdrep track` serves: the disk's FileBackend, with every WRITE, TRIM and
// WRITE_ZEROES first marking the blocks it touches in the change record. The data write is
// issued only after the bits of newly dirtied blocks are durable in the .psf, and (while a
// push holds a freeze) after the old contents of frozen blocks are kept. Reads, FLUSH and
// block status pass straight through; FUA and FLUSH make data durable as the inner backend does.
import type {NbdBackend, NbdExtent, NbdWriteZeroesOptions} from './nbd/backend.js'
import type {DirtyLog} from './dirty-log.js'
import type {Freezer} from './freezer.js'
import type {Unlock} from './nbd/range-lock.js'
import type {WriteGate} from './write-gate.js'

export interface RecordingCounters {
  writes: number
  bytesWritten: number
  zeroes: number
  trims: number
  flushes: number
}

export class RecordingBackend implements NbdBackend {
  readonly counters: RecordingCounters = {writes: 0, bytesWritten: 0, zeroes: 0, trims: 0, flushes: 0}

  constructor(
    private readonly inner: NbdBackend,
    private readonly log: DirtyLog,
    private readonly gate: WriteGate,
    private readonly freezer: Freezer,
    readonly blockSize: number,
  ) {}

  get size(): number {
    return this.inner.size
  }

  get exportName(): string {
    return this.inner.exportName
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.inner.read(offset, length)
  }

  blockStatus(offset: number, length: number): Promise<NbdExtent[]> {
    return this.inner.blockStatus(offset, length)
  }

  async flush(): Promise<void> {
    await this.inner.flush()
    this.counters.flushes++
  }

  async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    const ready = this.begin(offset, data.length)
    const unlock = ready === undefined ? undefined : await this.ready(ready)
    try {
      await this.inner.write(offset, data, fua)
    } finally {
      this.end(unlock)
    }
    this.counters.writes++
    this.counters.bytesWritten += data.length
  }

  async writeZeroes(offset: number, length: number, opts: NbdWriteZeroesOptions): Promise<void> {
    const ready = this.begin(offset, length)
    const unlock = ready === undefined ? undefined : await this.ready(ready)
    try {
      await this.inner.writeZeroes(offset, length, opts)
    } finally {
      this.end(unlock)
    }
    this.counters.zeroes++
  }

  async trim(offset: number, length: number, fua: boolean): Promise<void> {
    const ready = this.begin(offset, length)
    const unlock = ready === undefined ? undefined : await this.ready(ready)
    try {
      await this.inner.trim(offset, length, fua)
    } finally {
      this.end(unlock)
    }
    this.counters.trims++
  }

  /**
   * Before changing [offset, offset+length): enter the gate, make the blocks' bits durable,
   * keep frozen contents. Returns undefined when all of that was already true (the common
   * case: no promise at all), else a promise of the range lock to release after the change.
   * Either way the caller must call end().
   */
  private begin(offset: number, length: number): Promise<Unlock | undefined> | undefined {
    const entering = this.gate.enter()
    if (length <= 0) return entering && entering.then(() => undefined)
    const first = Math.floor(offset / this.blockSize)
    const last = Math.floor((offset + length - 1) / this.blockSize)
    if (entering === undefined) {
      let marked: Promise<void> | undefined
      try {
        marked = this.log.mark(first, last)
      } catch (err) {
        return Promise.reject(err)
      }
      if (marked === undefined && !this.freezer.active) return undefined
      return this.finishBegin(marked, first, last)
    }
    return entering.then(() => this.finishBegin(this.log.mark(first, last), first, last))
  }

  private async finishBegin(marked: Promise<void> | undefined, first: number, last: number): Promise<Unlock | undefined> {
    if (marked) await marked
    return this.freezer.active ? this.freezer.beforeWrite(first, last) : undefined
  }

  /** Slow path of begin(); a failure (the bit could not be persisted) leaves the gate. */
  private async ready(p: Promise<Unlock | undefined>): Promise<Unlock | undefined> {
    try {
      return await p
    } catch (err) {
      this.gate.leave()
      throw err
    }
  }

  private end(unlock: Unlock | undefined): void {
    unlock?.()
    this.gate.leave()
  }
}
