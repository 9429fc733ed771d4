// A small pool of worker threads that hash blocks, so that other cores hash beside the main
// thread. The results are the same bytes `blockHasher(algo)` gives on the main thread: a hole
// or an all-zero block hashes as `zeroHash(len)`, the last block may be short.
//
// hashBlocks: the blocks of a chunk in shared memory. The caller owns that memory and must not
//   reuse it until the promise settles (the workers read it in place, no copy).
// hashFileChunks: the workers read and hash chunks of a disk file themselves, claiming them
//   from a counter the caller's thread claims from too (work stealing: whoever is free takes
//   the next chunk, so a worker that starts late or runs slowly costs nothing but its start).
//
// Idle workers do not keep the process alive (unref'd while they have no job); `close()`
// terminates them. A worker that dies fails every job in flight and every later call with a
// HashWorkerError; a read error in a worker fails its job with the DiskIoError it met.
import os from 'node:os'
import {Worker} from 'node:worker_threads'
import {DiskIoError, VdrepError, type VdrepErrorOptions} from '../errors.js'
import {workerUrl} from '../locations.js'
import {HASH_LENGTH} from './block-hash.js'
import type {BlocksJob, FileJob, HashJob, HashReply} from './hash-worker.js'
import type {FileRange} from './range-hash.js'

/** A hash worker thread failed (died, or could not load the hash function). */
export class HashWorkerError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('HASH_WORKER', message, opts)
  }
}

export interface HashPoolOptions {
  /** Worker threads; default one per core, at most 4. */
  workers?: number
}

interface Pending {
  /** A blocks job's hashes, or (hashes undefined) a file job's end. */
  resolve(hashes?: ArrayBuffer): void
  reject(err: Error): void
  /** A file job: one chunk's hashes. */
  chunk?(first: number, count: number, hashes: Buffer): void
}

interface Slot {
  worker: Worker
  jobs: Map<number, Pending>
  /** Started and loaded the hash function. */
  ready: boolean
}

/** Workers a pool gets by default on this machine. */
export function defaultHashWorkers(): number {
  return Math.max(1, Math.min(4, os.availableParallelism()))
}

export class HashPool {
  private readonly slots: Slot[] = []
  private nextId = 1
  private failure: HashWorkerError | null = null
  private closed = false

  constructor(
    readonly algo: number,
    /** The hash key (the replica id), see blockHasher. */
    private readonly key: Buffer,
    opts: HashPoolOptions = {},
  ) {
    const n = Math.max(1, Math.floor(opts.workers ?? defaultHashWorkers()))
    for (let i = 0; i < n; i++) this.slots.push(this.spawn(i))
  }

  get size(): number {
    return this.slots.length
  }

  /** Set once a worker died; every call fails with it from then on. */
  get broken(): HashWorkerError | null {
    return this.failure
  }

  /**
   * Hash the blocks of `data` (block i is bytes [i*bs, (i+1)*bs), the last one may be short).
   * `holes[i]` nonzero: block i is a hole, hashed as zeros without being looked at. Resolves
   * with the hashes, HASH_LENGTH bytes per block, in order. `data` should live in a
   * SharedArrayBuffer (else it is copied once) and must not change until this settles.
   * The blocks are cut into at most `parts` jobs (default: one per worker).
   */
  hashBlocks(data: Buffer, bs: number, holes?: Uint8Array, parts = this.slots.length): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure)
    if (this.closed) return Promise.reject(new HashWorkerError('the hash pool is closed'))
    if (!(bs > 0)) return Promise.reject(new RangeError(`bad block size ${bs}`))
    const count = Math.ceil(data.length / bs)
    const out = Buffer.allocUnsafe(count * HASH_LENGTH)
    if (count === 0) return Promise.resolve(out)
    let shared = data
    if (!(data.buffer instanceof SharedArrayBuffer)) {
      shared = Buffer.from(new SharedArrayBuffer(data.length))
      data.copy(shared)
    }
    const per = Math.ceil(count / Math.max(1, Math.min(parts, count)))
    const jobs: Promise<void>[] = []
    for (let first = 0; first < count; first += per) {
      const n = Math.min(per, count - first)
      const start = first * bs
      const len = Math.min(shared.length - start, n * bs)
      let h: Uint8Array | null = null
      if (holes) {
        // A copy of just this part's flags (a view would clone its whole backing buffer).
        const part = holes.slice(first, first + n)
        if (part.some((x) => x !== 0)) h = part
      }
      const job: BlocksJob = {
        kind: 'blocks',
        id: this.nextId++,
        buf: shared.buffer as SharedArrayBuffer,
        byteOffset: shared.byteOffset + start,
        len,
        bs,
        count: n,
        holes: h,
      }
      jobs.push(this.post(job).then((ab) => void Buffer.from(ab as ArrayBuffer).copy(out, first * HASH_LENGTH)))
    }
    return (jobs.length === 1 ? jobs[0] : Promise.all(jobs)).then(() => out)
  }

  /**
   * Every worker hashes chunks of `chunkBlocks` blocks of the file, claiming chunk index
   * `Atomics.add(counter, 0, 1)` until the chunks run out; `onChunk` gets each one's hashes
   * (in no particular order). The caller may claim from the same counter meanwhile. Resolves
   * once every worker has run out; rejects on the first read error or a worker's death.
   */
  hashFileChunks(range: FileRange, chunkBlocks: number, counter: Int32Array, onChunk: (first: number, count: number, hashes: Buffer) => void): Promise<void> {
    if (this.failure) return Promise.reject(this.failure)
    if (this.closed) return Promise.reject(new HashWorkerError('the hash pool is closed'))
    if (!(counter.buffer instanceof SharedArrayBuffer)) return Promise.reject(new TypeError('the chunk counter must live in a SharedArrayBuffer'))
    const runs = this.slots.map((slot) => {
      const job: FileJob = {kind: 'file', id: this.nextId++, range: {...range}, chunkBlocks, counter: counter.buffer as SharedArrayBuffer}
      return this.post(job, slot, onChunk)
    })
    return Promise.all(runs).then(() => {})
  }

  /** Terminate the workers; jobs still in flight fail. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.rejectAll(new HashWorkerError('the hash pool was closed with jobs in flight'))
    await Promise.all(this.slots.map((s) => s.worker.terminate().catch(() => 0)))
  }

  private spawn(i: number): Slot {
    const worker = new Worker(workerUrl('hash-worker'), {workerData: {algo: this.algo, key: new Uint8Array(this.key)}, name: `vdrep-hash-${i}`})
    const slot: Slot = {worker, jobs: new Map(), ready: false}
    worker.unref()
    worker.on('message', (m: HashReply) => {
      if ('ready' in m) {
        slot.ready = true
        return
      }
      const p = slot.jobs.get(m.id)
      if (!p) return
      if ('hashes' in m && m.first !== undefined && m.count !== undefined) {
        p.chunk?.(m.first, m.count, Buffer.from(m.hashes))
        return
      }
      slot.jobs.delete(m.id)
      if (slot.jobs.size === 0) worker.unref()
      if ('error' in m) {
        p.reject(m.diskIo ? new DiskIoError(m.error, {hint: m.hint}) : new HashWorkerError(`hashing in a worker thread failed: ${m.error}`))
      } else p.resolve('hashes' in m ? m.hashes : undefined)
    })
    worker.on('error', (err) => this.die(`a hash worker thread failed: ${err.message}`, err))
    worker.on('messageerror', (err) => this.die(`a hash worker thread sent an unreadable message: ${err.message}`, err))
    worker.on('exit', (code) => {
      if (!this.closed) this.die(`a hash worker thread exited unexpectedly (code ${code})`)
    })
    return slot
  }

  private post(job: HashJob, to?: Slot, chunk?: Pending['chunk']): Promise<ArrayBuffer | undefined> {
    let slot = to ?? this.slots[0]
    if (!to) for (const s of this.slots) if (s.jobs.size < slot.jobs.size || (s.jobs.size === slot.jobs.size && s.ready && !slot.ready)) slot = s
    return new Promise<ArrayBuffer | undefined>((resolve, reject) => {
      if (slot.jobs.size === 0) slot.worker.ref() // a job in flight keeps the process alive
      slot.jobs.set(job.id, {resolve, reject, chunk})
      slot.worker.postMessage(job)
    })
  }

  private die(message: string, cause?: unknown): void {
    if (this.failure || this.closed) return
    this.failure = new HashWorkerError(message, {cause, hint: 'this is a bug or a resource limit (memory, threads); run the command again'})
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
