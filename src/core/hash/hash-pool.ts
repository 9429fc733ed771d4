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
import {DiskIoError, VdrepError, type VdrepErrorOptions} from '../errors.js'
import {workerUrl} from '../locations.js'
import {WorkerJobs, type WorkerSlot} from '../util/worker-jobs.js'
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

type Slot = WorkerSlot<Pending>

/** Workers a pool gets by default on this machine. */
export function defaultHashWorkers(): number {
  return Math.max(1, Math.min(4, os.availableParallelism()))
}

export class HashPool extends WorkerJobs<Pending> {
  /** Workers that started and loaded the hash function. */
  private readonly ready = new WeakSet<Slot>()

  constructor(
    readonly algo: number,
    /** The hash key (the replica id), see blockHasher. */
    private readonly key: Buffer,
    opts: HashPoolOptions = {},
  ) {
    super(
      (message, cause) => new HashWorkerError(message, {cause, hint: 'this is a bug or a resource limit (memory, threads); run the command again'}),
      'a hash worker thread',
      'the hash pool',
    )
    const n = Math.max(1, Math.floor(opts.workers ?? defaultHashWorkers()))
    const workerData = {algo: this.algo, key: new Uint8Array(this.key)}
    for (let i = 0; i < n; i++) this.spawn<HashReply>(workerUrl('hash-worker'), {workerData, name: `vdrep-hash-${i}`}, (slot, m) => this.reply(slot, m))
  }

  get size(): number {
    return this.slots.length
  }

  /** Set once a worker died; every call fails with it from then on. */
  get broken(): HashWorkerError | null {
    return (this.failure as HashWorkerError | undefined) ?? null
  }

  /**
   * Hash the blocks of `data` (block i is bytes [i*bs, (i+1)*bs), the last one may be short).
   * `holes[i]` nonzero: block i is a hole, hashed as zeros without being looked at. Resolves
   * with the hashes, HASH_LENGTH bytes per block, in order. `data` should live in a
   * SharedArrayBuffer (else it is copied once) and must not change until this settles.
   * The blocks are cut into at most `parts` jobs (default: one per worker).
   */
  hashBlocks(data: Buffer, bs: number, holes?: Uint8Array, parts = this.slots.length): Promise<Buffer> {
    const refused = this.refusal()
    if (refused) return Promise.reject(refused)
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
        id: this.newId(),
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
    const refused = this.refusal()
    if (refused) return Promise.reject(refused)
    if (!(counter.buffer instanceof SharedArrayBuffer)) return Promise.reject(new TypeError('the chunk counter must live in a SharedArrayBuffer'))
    const runs = this.slots.map((slot) => {
      const job: FileJob = {kind: 'file', id: this.newId(), range: {...range}, chunkBlocks, counter: counter.buffer as SharedArrayBuffer}
      return this.post(job, slot, onChunk)
    })
    return Promise.all(runs).then(() => {})
  }

  private reply(slot: Slot, m: HashReply): void {
    if ('ready' in m) {
      this.ready.add(slot)
      return
    }
    if ('hashes' in m && m.first !== undefined && m.count !== undefined) {
      slot.jobs.get(m.id)?.chunk?.(m.first, m.count, Buffer.from(m.hashes))
      return
    }
    const p = this.settle(slot, m.id)
    if (!p) return
    if ('error' in m) {
      p.reject(m.diskIo ? new DiskIoError(m.error, {hint: m.hint}) : new HashWorkerError(`hashing in a worker thread failed: ${m.error}`))
    } else p.resolve('hashes' in m ? m.hashes : undefined)
  }

  private post(job: HashJob, to?: Slot, chunk?: Pending['chunk']): Promise<ArrayBuffer | undefined> {
    // Of equally busy workers, one that is ready (a late starter costs its start).
    const slot = to ?? this.leastBusy((a, b) => this.ready.has(a) && !this.ready.has(b))
    return new Promise<ArrayBuffer | undefined>((resolve, reject) => {
      this.track(slot, job.id, {resolve, reject, chunk})
      slot.worker.postMessage(job)
    })
  }
}
