// The NBD backend `vdrep track` serves: the disk's FileBackend, with every WRITE, TRIM and
// WRITE_ZEROES first marking the blocks it touches in the change record. The data write is
// issued only after the bits of newly dirtied blocks are durable in the .psf, and (while a
// push holds a freeze) after the old contents of frozen blocks are kept. Reads, FLUSH and
// block status pass straight through; FUA and FLUSH make data durable as the inner backend does.
import type {NbdBackend, NbdExtent, NbdWriteZeroesOptions} from './nbd/backend.js'
import type {DirtyLog} from './dirty-log.js'
import type {Freezer} from './freezer.js'
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
    await this.mutate(offset, data.length, () => this.inner.write(offset, data, fua))
    this.counters.writes++
    this.counters.bytesWritten += data.length
  }

  async writeZeroes(offset: number, length: number, opts: NbdWriteZeroesOptions): Promise<void> {
    await this.mutate(offset, length, () => this.inner.writeZeroes(offset, length, opts))
    this.counters.zeroes++
  }

  async trim(offset: number, length: number, fua: boolean): Promise<void> {
    await this.mutate(offset, length, () => this.inner.trim(offset, length, fua))
    this.counters.trims++
  }

  /** Mark, keep frozen contents, then change the disk; in that order, always. */
  private async mutate(offset: number, length: number, change: () => Promise<void>): Promise<void> {
    if (length <= 0) return change()
    const entering = this.gate.enter()
    if (entering) await entering
    try {
      const first = Math.floor(offset / this.blockSize)
      const last = Math.floor((offset + length - 1) / this.blockSize)
      const marked = this.log.mark(first, last)
      if (marked) await marked
      const unlock = this.freezer.active ? await this.freezer.beforeWrite(first, last) : undefined
      try {
        await change()
      } finally {
        unlock?.()
      }
    } finally {
      this.gate.leave()
    }
  }
}
