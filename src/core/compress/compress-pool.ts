// The compression worker threads of one session (compress-worker.ts): one by default, two where
// the host has four cores or more. Jobs go to the worker with the fewest in flight; each
// settles with the compressed bytes or the piece's own bytes (it did not shrink), and the time
// the worker spent, which is what `auto` measures the compressor's rate by.
//
// Never silent: a worker that dies, fails to load zstd or sends something unreadable fails every
// job in flight and every later one with a CompressWorkerError, and the sync fails with it. Idle
// workers do not keep the process alive; close() terminates them.
import os from 'node:os'
import {Worker} from 'node:worker_threads'
import {VdrepError, type VdrepErrorOptions} from '../errors.js'
import {workerUrl} from '../locations.js'
import {compressBound} from './codec.js'
import type {CompressJob, CompressReply} from './compress-worker.js'

export class CompressWorkerError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('COMPRESS_WORKER', message, opts)
  }
}

export interface Compressed {
  /** The compressed bytes, or null: the piece did not shrink and `raw` holds its bytes. */
  packed: Buffer | null
  raw: Buffer | null
  /** Worker time for the job, and the input bytes it compressed in that time. */
  ms: number
  tried: number
}

interface Slot {
  worker: Worker
  jobs: Map<number, {resolve: (c: Compressed) => void; reject: (e: Error) => void}>
}

/** Workers for this host: one, or two where there are four cores or more (both ends may share two). */
export function defaultCompressWorkers(): number {
  return os.availableParallelism() >= 4 ? 2 : 1
}

export class CompressPool {
  private readonly slots: Slot[] = []
  private nextId = 1
  private failure: CompressWorkerError | undefined
  private closed = false

  constructor(readonly workers = defaultCompressWorkers()) {
    for (let i = 0; i < workers; i++) this.slots.push(this.spawn(i))
  }

  /**
   * Compress `piece` (copied: the caller may reuse it at once) at `level`; the first `sample`
   * bytes are tried alone first. Kept only below `keepBelow` of its length.
   */
  compress(piece: Buffer, level: number, sample: number, keepBelow: number): Promise<Compressed> {
    if (this.failure) return Promise.reject(this.failure)
    if (this.closed) return Promise.reject(new CompressWorkerError('the compression pool is closed'))
    const data = new ArrayBuffer(piece.length)
    piece.copy(Buffer.from(data))
    const out = new ArrayBuffer(compressBound(piece.length))
    let slot = this.slots[0]
    for (const s of this.slots) if (s.jobs.size < slot.jobs.size) slot = s
    const job: CompressJob = {id: this.nextId++, data, out, level, sample, keepBelow}
    return new Promise<Compressed>((resolve, reject) => {
      if (slot.jobs.size === 0) slot.worker.ref()
      slot.jobs.set(job.id, {resolve, reject})
      slot.worker.postMessage(job, [data, out])
    })
  }

  /** For tests: the workers' threads (a test kills one to see the sync fail loudly). */
  threads(): readonly Worker[] {
    return this.slots.map((s) => s.worker)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.rejectAll(new CompressWorkerError('the compression pool was closed with jobs in flight'))
    await Promise.all(this.slots.map((s) => s.worker.terminate().catch(() => 0)))
  }

  private spawn(i: number): Slot {
    // Its data lives in transferred ArrayBuffers, off its heap: a small heap keeps its resident
    // memory small (default limits cost the client ~60 MiB more, over the 160 MiB target).
    const worker = new Worker(workerUrl('compress-worker'), {
      name: `vdrep-compress-${i}`,
      resourceLimits: {maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32},
    })
    const slot: Slot = {worker, jobs: new Map()}
    worker.unref()
    worker.on('message', (m: CompressReply) => {
      if ('ready' in m) return
      const p = slot.jobs.get(m.id)
      if (!p) return
      slot.jobs.delete(m.id)
      if (slot.jobs.size === 0) worker.unref()
      if ('error' in m) return this.die(`compressing in a worker thread failed: ${m.error}`)
      const packed = m.packed >= 0 ? Buffer.from(m.out, 0, m.packed) : null
      p.resolve({packed, raw: packed ? null : Buffer.from(m.data), ms: m.ms, tried: m.tried})
    })
    worker.on('error', (err) => this.die(`a compression worker thread failed: ${err.message}`, err))
    worker.on('messageerror', (err) => this.die(`a compression worker thread sent an unreadable message: ${err.message}`, err))
    worker.on('exit', (code) => {
      if (!this.closed) this.die(`a compression worker thread exited unexpectedly (code ${code})`)
    })
    return slot
  }

  private die(message: string, cause?: unknown): void {
    if (this.failure || this.closed) return
    this.failure = new CompressWorkerError(message, {
      cause,
      hint: 'this is a bug or a resource limit (memory, threads); run the command again, or with --compress none',
    })
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
