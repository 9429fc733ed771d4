// The skeleton under vdrep's worker-thread pools (hash/hash-pool.ts, compress/compress-pool.ts):
// slots of one worker and its jobs in flight by id, each worker ref'd only while it has a job
// (an idle pool never keeps the process alive), and one way to fail. A worker that dies, sends
// something unreadable or exits unasked fails every job in flight and every later call with the
// pool's own error (sticky), and the others are terminated; close() terminates them all.
import {Worker, type WorkerOptions} from 'node:worker_threads'
import type {VdrepError} from '../errors.js'

export interface WorkerSlot<J> {
  worker: Worker
  /** Jobs in flight, by id. */
  jobs: Map<number, J>
}

/** A job in flight: what fails it. */
export interface PendingJob {
  reject(err: Error): void
}

export abstract class WorkerJobs<J extends PendingJob> {
  protected readonly slots: Array<WorkerSlot<J>> = []
  protected failure: VdrepError | undefined
  protected closed = false
  private lastId = 0

  constructor(
    /** This pool's error, for a death and for calls after close(). */
    private readonly fail: (message: string, cause?: unknown) => VdrepError,
    /** What the messages call a worker ('a hash worker thread') and the pool ('the hash pool'). */
    private readonly what: string,
    private readonly pool: string,
  ) {}

  /** For tests: the workers' threads (a test kills one to see the caller fail loudly). */
  threads(): readonly Worker[] {
    return this.slots.map((s) => s.worker)
  }

  /** Terminate the workers; jobs still in flight fail. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.rejectAll(this.fail(`${this.pool} was closed with jobs in flight`))
    await Promise.all(this.slots.map((s) => s.worker.terminate().catch(() => 0)))
  }

  /** Why a new job cannot start (the pool died or was closed), or undefined. */
  protected refusal(): VdrepError | undefined {
    return this.failure ?? (this.closed ? this.fail(`${this.pool} is closed`) : undefined)
  }

  protected newId(): number {
    return ++this.lastId
  }

  /** Start worker `url`; `onMessage` gets everything it posts. Deaths are wired here. */
  protected spawn<M>(url: URL, opts: WorkerOptions, onMessage: (slot: WorkerSlot<J>, m: M) => void): WorkerSlot<J> {
    const worker = new Worker(url, opts)
    const slot: WorkerSlot<J> = {worker, jobs: new Map()}
    worker.unref()
    worker.on('message', (m: M) => onMessage(slot, m))
    worker.on('error', (err) => this.die(`${this.what} failed: ${err.message}`, err))
    worker.on('messageerror', (err) => this.die(`${this.what} sent an unreadable message: ${err.message}`, err))
    worker.on('exit', (code) => {
      if (!this.closed) this.die(`${this.what} exited unexpectedly (code ${code})`)
    })
    this.slots.push(slot)
    return slot
  }

  /** The slot with the fewest jobs in flight (the first of equals, unless `better` prefers another). */
  protected leastBusy(better?: (a: WorkerSlot<J>, b: WorkerSlot<J>) => boolean): WorkerSlot<J> {
    let slot = this.slots[0]
    for (const s of this.slots) if (s.jobs.size < slot.jobs.size || (s.jobs.size === slot.jobs.size && better?.(s, slot))) slot = s
    return slot
  }

  /** `job` is in flight on `slot` as `id`: the worker keeps the process alive until it settles. */
  protected track(slot: WorkerSlot<J>, id: number, job: J): void {
    if (slot.jobs.size === 0) slot.worker.ref()
    slot.jobs.set(id, job)
  }

  /** Job `id` of `slot` is done: taken out of flight (undefined if unknown, e.g. already failed). */
  protected settle(slot: WorkerSlot<J>, id: number): J | undefined {
    const job = slot.jobs.get(id)
    if (!job) return undefined
    slot.jobs.delete(id)
    if (slot.jobs.size === 0) slot.worker.unref()
    return job
  }

  /** The pool is broken: every job in flight and every later call fail with one error. */
  protected die(message: string, cause?: unknown): void {
    if (this.failure || this.closed) return
    this.failure = this.fail(message, cause)
    this.rejectAll(this.failure)
    for (const s of this.slots) void s.worker.terminate().catch(() => 0)
  }

  private rejectAll(err: Error): void {
    for (const s of this.slots) {
      for (const p of s.jobs.values()) p.reject(err)
      s.jobs.clear()
      s.worker.unref()
    }
  }
}
