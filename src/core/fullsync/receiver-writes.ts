// The receiver's writes to the replica during a full sync: contiguous DATA blocks gathered into
// one positioned writev, zero runs punched, at most MAX_WRITES_IN_FLIGHT of them running at
// once, and the first write error kept so the session fails with it. Receive memory lent with a
// DATA frame goes back to the reader once the write that used it is done.
import type {ReadableDisk} from '../disk/read-hash.js'
import type {ReplicaFile} from '../receiver/replica-file.js'

/** Writes (runs or zero ranges) running at once; the receive loop waits beyond this. */
const MAX_WRITES_IN_FLIGHT = 8
/** A run of contiguous blocks is written once it holds this much. */
const MAX_RUN_BYTES = 4 << 20

interface PendingRun {
  start: number
  end: number
  buffers: Buffer[]
  bytes: number
  /** The reader's receive memory these buffers hold, handed back once written. */
  releases: Array<() => void>
}

/** What the full sync's receive loop needs of a replica writer (this one, or direct-writes.ts). */
export interface BlockWrites {
  /** How the bytes reach the replica, for the session's log. */
  readonly mode: string
  /**
   * Queue a block; a promise only when the caller must wait (for room, or for a copy to be
   * taken), undefined when it was queued at once. Throws (or rejects) with the first write error.
   */
  writeBlock(block: number, data: Buffer, release?: () => void): Promise<void> | undefined
  zeroRange(offset: number, length: number): Promise<void>
  settle(): Promise<void>
  /**
   * Settles once every write queued so far is done (fails as settle does), without holding back
   * the writes queued after it: a checkpoint waits on this while the next blocks are written.
   */
  barrier(): Promise<void>
  /** The replica as the proof reads it back, when not as the replica file itself reads. */
  readonly readBack?: ReadableDisk
  /** After settle or a failure: nothing of this writer is left running. */
  close(): Promise<void>
}

export class ReplicaWrites implements BlockWrites {
  readonly mode = 'page cache'
  private inFlight: Promise<unknown>[] = []
  private writeError: Error | undefined
  /** Contiguous blocks waiting to be written together. */
  private pendingRun: PendingRun | undefined

  constructor(
    private readonly replica: ReplicaFile,
    private readonly blockSize: number,
  ) {}

  /** Queue block `block`'s bytes (checked by the caller); written with its contiguous neighbours. */
  async writeBlock(block: number, data: Buffer, release?: () => void): Promise<void> {
    const run = this.pendingRun
    if (run && run.end === block && run.bytes < MAX_RUN_BYTES) {
      run.buffers.push(data)
      if (release) run.releases.push(release)
      run.end++
      run.bytes += data.length
      return
    }
    await this.flushRun()
    this.pendingRun = {start: block, end: block + 1, buffers: [data], bytes: data.length, releases: release ? [release] : []}
  }

  /** Zero `length` bytes at `offset` (a hole where the file system can punch one). */
  async zeroRange(offset: number, length: number): Promise<void> {
    await this.flushRun()
    await this.track(this.replica.zeroRange(offset, length))
  }

  /** Every write queued so far is done; fails with the first write error. */
  async settle(): Promise<void> {
    this.startRun()
    const pending = this.inFlight
    this.inFlight = []
    await Promise.allSettled(pending)
    if (this.writeError) throw this.writeError
  }

  barrier(): Promise<void> {
    this.startRun()
    return Promise.allSettled([...this.inFlight]).then(() => {
      if (this.writeError) throw this.writeError
    })
  }

  async close(): Promise<void> {
    this.pendingRun = undefined
    await Promise.allSettled(this.inFlight)
  }

  private async flushRun(): Promise<void> {
    this.startRun()
    await this.limit()
  }

  /** Start writing the pending run, if any (in flight from here on). */
  private startRun(): void {
    const run = this.pendingRun
    if (!run) return
    this.pendingRun = undefined
    const written = this.replica.writeRun(run.buffers, run.start * this.blockSize)
    // The received bytes are the reader's to reuse once the write is done with them.
    if (run.releases.length > 0) void written.then(releaseAll(run.releases), releaseAll(run.releases))
    this.add(written)
  }

  private async track(p: Promise<unknown>): Promise<void> {
    this.add(p)
    await this.limit()
  }

  private add(p: Promise<unknown>): void {
    // Keep the first write error (ENOSPC, EIO) and fail the session with it; never leave a
    // rejected promise unobserved (that would end the process instead of answering the client).
    p.catch((err: Error) => {
      this.writeError ??= err
    })
    this.inFlight.push(p)
  }

  private async limit(): Promise<void> {
    if (this.writeError) throw this.writeError
    if (this.inFlight.length >= MAX_WRITES_IN_FLIGHT) await this.settle()
  }
}

function releaseAll(releases: Array<() => void>): () => void {
  return () => {
    for (const r of releases) r()
  }
}
