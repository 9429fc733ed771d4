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
  /** Where the compressed bytes go (compressBound(data) long): made by the sending thread, so
   * every buffer lives in its allocator (memory freed across threads' malloc arenas stayed
   * resident: 60 MiB more for a 1 GiB full sync). */
  out: ArrayBuffer
  level: number
  /** Bytes of the sample tried first. */
  sample: number
  /** Kept compressed only below this share of the input. */
  keepBelow: number
}

/** Both buffers come back; `packed` bytes of `out` hold the compressed piece, or -1: it did not shrink. */
export type CompressReply =
  {ready: true} | {id: number; data: ArrayBuffer; out: ArrayBuffer; packed: number; ms: number; tried: number} | {id: number; error: string}

const port = parentPort
if (!port) throw new Error('compress-worker must run as a worker thread')
const compressor = new Compressor()

function run(job: CompressJob): CompressReply {
  const t0 = performance.now()
  const src = Buffer.from(job.data)
  const dst = Buffer.from(job.out)
  const shrinks = (b: Buffer) => compressor.compressInto(dst, b, job.level, Math.floor(b.length * job.keepBelow))
  const reply = (packed: number, tried: number): CompressReply => ({id: job.id, data: job.data, out: job.out, packed, ms: performance.now() - t0, tried})
  const sample = src.subarray(0, Math.min(job.sample, src.length))
  if (sample.length < src.length && shrinks(sample) < 0) return reply(-1, sample.length)
  return reply(shrinks(src), src.length)
}

port.on('message', (job: CompressJob) => {
  let reply: CompressReply
  try {
    reply = run(job)
  } catch (err) {
    reply = {id: job.id, error: (err as Error)?.message ?? String(err)}
  }
  const move = 'out' in reply ? [reply.data, reply.out] : []
  port.postMessage(reply, move)
})

port.postMessage({ready: true} satisfies CompressReply)
