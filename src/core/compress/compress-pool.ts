// The compression worker threads of one session (compress-worker.ts): one by default, two where
// the host has four cores or more. Jobs go to the worker with the fewest in flight; each
// settles with both of its buffers back (transfer-buffers.ts: the caller owns and reuses them),
// whether the piece shrank, and the time the worker spent, which is what `auto` measures the
// compressor's rate by.
//
// Never silent: a worker that dies, fails to load zstd or sends something unreadable fails every
// job in flight and every later one with a CompressWorkerError, and the sync fails with it
// (util/worker-jobs.ts). Idle workers do not keep the process alive; close() terminates them.
import os from 'node:os'
import {VdrepError, type VdrepErrorOptions} from '../errors.js'
import {workerUrl} from '../locations.js'
import {WorkerJobs, type WorkerSlot} from '../util/worker-jobs.js'
import type {CompressJob, CompressReply} from './compress-worker.js'

export class CompressWorkerError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('COMPRESS_WORKER', message, opts)
  }
}

export interface Compressed {
  /** The piece's buffer (its first `length` bytes) and the compressed bytes' buffer, both back. */
  data: ArrayBuffer
  out: ArrayBuffer
  length: number
  /** Compressed bytes at the start of `out`, or -1: the piece did not shrink (send `data` raw). */
  packed: number
  /** Worker time for the job, and the input bytes it compressed in that time. */
  ms: number
  tried: number
}

interface Pending {
  length: number
  resolve: (c: Compressed) => void
  reject: (e: Error) => void
}

/** Workers for this host: one, or two where there are four cores or more (both ends may share two). */
export function defaultCompressWorkers(): number {
  return os.availableParallelism() >= 4 ? 2 : 1
}

const HINT = 'this is a bug or a resource limit (memory, threads); run the command again, or with --compress none'

export class CompressPool extends WorkerJobs<Pending> {
  private started = 0

  constructor(readonly workers = defaultCompressWorkers()) {
    super((message, cause) => new CompressWorkerError(message, {cause, hint: HINT}), 'a compression worker thread', 'the compression pool')
    // Its data lives in transferred ArrayBuffers, off its heap: a small heap keeps its resident
    // memory small (default limits cost the client ~60 MiB more, over the 160 MiB target).
    const limits = {maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32}
    for (let i = 0; i < workers; i++)
      this.spawn<CompressReply>(workerUrl('compress-worker'), {name: `vdrep-compress-${i}`, resourceLimits: limits}, (s, m) => this.reply(s, m))
  }

  /**
   * Compress the first `length` bytes of `data` into `out` (at least compressBound(length)
   * long) at `level`; the first `sample` bytes are tried alone first. Kept only below
   * `keepBelow` of its length. Both buffers are transferred (detached here) until the result.
   */
  compress(data: ArrayBuffer, length: number, out: ArrayBuffer, level: number, sample: number, keepBelow: number): Promise<Compressed> {
    const refused = this.refusal()
    if (refused) return Promise.reject(refused)
    const slot = this.leastBusy()
    const job: CompressJob = {id: this.newId(), data, length, out, level, sample, keepBelow}
    return new Promise<Compressed>((resolve, reject) => {
      this.track(slot, job.id, {length, resolve, reject})
      slot.worker.postMessage(job, [data, out])
    })
  }

  /** Every worker has loaded zstd and takes a job at once, or the pool fails it at once (until then a job waits for the start: 0.1-0.4 s). */
  get ready(): boolean {
    return this.started === this.workers || this.refusal() !== undefined
  }

  private reply(slot: WorkerSlot<Pending>, m: CompressReply): void {
    if ('ready' in m) {
      this.started++
      return
    }
    const p = this.settle(slot, m.id)
    if (!p) return
    if ('error' in m) return this.die(`compressing in a worker thread failed: ${m.error}`)
    p.resolve({data: m.data, out: m.out, length: p.length, packed: m.packed, ms: m.ms, tried: m.tried})
  }
}
