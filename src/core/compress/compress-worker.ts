// Entry of one compression worker thread (compress-pool.ts): zstd off the sending thread, so
// reading, hashing and the carrier's encryption go on while a run is compressed. A job is one
// piece of a run: its bytes and the room for its compressed bytes come in two transferred
// buffers (transfer-buffers.ts, reused by the sending thread) and both go back with the reply,
// which says whether the piece shrank enough to go compressed. Data that does not compress
// costs one sample's try: the first SAMPLE_BYTES are compressed alone and, if they do not
// shrink, the rest is not tried (random data, encrypted or already compressed files).
import {parentPort} from 'node:worker_threads'
import {compressPiece, Compressor} from './codec.js'

export interface CompressJob {
  id: number
  /** The piece is its first `length` bytes. */
  data: ArrayBuffer
  length: number
  /** Where the compressed bytes go (at least compressBound(length) long). Made and reused by
   * the sending thread, so every buffer lives in its allocator (memory freed across threads'
   * malloc arenas stayed resident: 60 MiB more for a 1 GiB full sync). */
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

port.on('message', (job: CompressJob) => {
  let reply: CompressReply
  try {
    const t0 = performance.now()
    const {packed, tried} = compressPiece(compressor, Buffer.from(job.data, 0, job.length), Buffer.from(job.out), job.level, job.sample, job.keepBelow)
    reply = {id: job.id, data: job.data, out: job.out, packed, ms: performance.now() - t0, tried}
  } catch (err) {
    reply = {id: job.id, error: (err as Error)?.message ?? String(err)}
  }
  const move = 'out' in reply ? [reply.data, reply.out] : []
  port.postMessage(reply, move)
})

port.postMessage({ready: true} satisfies CompressReply)
