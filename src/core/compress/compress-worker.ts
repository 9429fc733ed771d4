// Entry of one compression worker thread (compress-pool.ts): zstd off the sending thread, so
// reading, hashing and the carrier's encryption go on while a run is compressed. A job is one
// piece of a run (its bytes transferred here, never shared); the reply transfers back either the
// compressed bytes or, when the piece does not shrink enough, its own bytes (the sender sends
// them raw). Data that does not compress costs one sample's try: the first SAMPLE_BYTES are
// compressed alone and, if they do not shrink, the rest is not tried (random data, encrypted
// or already compressed files).
import {parentPort} from 'node:worker_threads'
import {Compressor} from './codec.js'

export interface CompressJob {
  id: number
  data: ArrayBuffer
  level: number
  /** Bytes of the sample tried first. */
  sample: number
  /** Kept compressed only below this share of the input. */
  keepBelow: number
}

export type CompressReply =
  | {ready: true}
  | {id: number; packed: ArrayBuffer; ms: number; tried: number}
  | {id: number; raw: ArrayBuffer; ms: number; tried: number}
  | {id: number; error: string}

const port = parentPort
if (!port) throw new Error('compress-worker must run as a worker thread')
const compressor = new Compressor()

function run(job: CompressJob): CompressReply {
  const t0 = performance.now()
  const src = Buffer.from(job.data)
  const shrinks = (b: Buffer) => compressor.compress(b, job.level, Math.floor(b.length * job.keepBelow))
  const sample = src.subarray(0, Math.min(job.sample, src.length))
  if (sample.length < src.length && !shrinks(sample)) return {id: job.id, raw: job.data, ms: performance.now() - t0, tried: sample.length}
  const out = shrinks(src)
  if (!out) return {id: job.id, raw: job.data, ms: performance.now() - t0, tried: src.length}
  const packed = new ArrayBuffer(out.length)
  out.copy(Buffer.from(packed))
  return {id: job.id, packed, ms: performance.now() - t0, tried: src.length}
}

port.on('message', (job: CompressJob) => {
  let reply: CompressReply
  try {
    reply = run(job)
  } catch (err) {
    reply = {id: job.id, error: (err as Error)?.message ?? String(err)}
  }
  const move = 'packed' in reply ? [reply.packed] : 'raw' in reply ? [reply.raw] : []
  port.postMessage(reply, move)
})

port.postMessage({ready: true} satisfies CompressReply)
