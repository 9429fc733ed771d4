// Entry of one HashPool worker thread. Two kinds of job, hashed exactly as blockHasher does on
// the main thread (holes and all-zero blocks get `zeroHash(len)`, the hash of zeros):
//   blocks: the blocks of a chunk in shared memory (never written here); the hashes come back
//           in a transferred buffer.
//   file:   chunks of a disk file claimed one at a time from a shared counter (the main thread
//           and the other workers claim from the same one), each read here and hashed while
//           in this core's cache; one message per chunk, then `done`.
import {parentPort, workerData} from 'node:worker_threads'
import {DiskIoError} from '../errors.js'
import {blockHasher, HASH_LENGTH} from './block-hash.js'
import {hashFileBlocks, type FileRange} from './range-hash.js'
import {isAllZero} from './zero.js'

/** Blocks [0, count) of the `len` bytes at `byteOffset` of `buf`. */
export interface BlocksJob {
  kind: 'blocks'
  id: number
  buf: SharedArrayBuffer
  byteOffset: number
  len: number
  bs: number
  count: number
  /** Per block: nonzero for a hole (not read; hashed as zeros). */
  holes: Uint8Array | null
}

/** Chunks of `chunkBlocks` blocks of the file, claimed by Atomics.add on counter[0]. */
export interface FileJob {
  kind: 'file'
  id: number
  range: FileRange
  chunkBlocks: number
  counter: SharedArrayBuffer
}

export type HashJob = BlocksJob | FileJob

export type HashReply =
  | {ready: true}
  | {id: number; hashes: ArrayBuffer; first?: number; count?: number}
  | {id: number; done: true}
  | {id: number; error: string; diskIo?: boolean; hint?: string}

const port = parentPort
if (!port) throw new Error('hash-worker must run as a worker thread')
const {algo, key} = workerData as {algo: number; key: Uint8Array}
const hasher = blockHasher(algo, Buffer.from(key))
let fileBuf: Buffer | undefined

function blocks(job: BlocksJob): void {
  const data = Buffer.from(job.buf, job.byteOffset, job.len)
  const ab = new ArrayBuffer(job.count * HASH_LENGTH)
  const out = Buffer.from(ab)
  for (let i = 0; i < job.count; i++) {
    const start = i * job.bs
    const end = Math.min(job.len, start + job.bs)
    const block = data.subarray(start, end)
    const h = (job.holes !== null && job.holes[i]) || isAllZero(block) ? hasher.zeroHash(end - start) : hasher.hash(block)
    h.copy(out, i * HASH_LENGTH)
  }
  ;(port as NonNullable<typeof port>).postMessage({id: job.id, hashes: ab} satisfies HashReply, [ab])
}

function file(job: FileJob): void {
  const {range, chunkBlocks} = job
  const counter = new Int32Array(job.counter)
  const blockCount = Math.ceil(range.size / range.bs)
  const need = chunkBlocks * range.bs
  if (!fileBuf || fileBuf.length < need) fileBuf = Buffer.allocUnsafeSlow(need)
  for (;;) {
    const first = Atomics.add(counter, 0, 1) * chunkBlocks
    if (first >= blockCount) break
    const count = Math.min(chunkBlocks, blockCount - first)
    const ab = new ArrayBuffer(count * HASH_LENGTH)
    hashFileBlocks(range, first, count, hasher, fileBuf, Buffer.from(ab))
    ;(port as NonNullable<typeof port>).postMessage({id: job.id, hashes: ab, first, count} satisfies HashReply, [ab])
  }
  ;(port as NonNullable<typeof port>).postMessage({id: job.id, done: true} satisfies HashReply)
}

port.postMessage({ready: true} satisfies HashReply)

port.on('message', (job: HashJob) => {
  try {
    if (job.kind === 'file') file(job)
    else blocks(job)
  } catch (err) {
    const e = err as Error & {hint?: string}
    port.postMessage({id: job.id, error: e?.message ?? String(err), diskIo: err instanceof DiskIoError, hint: e?.hint} satisfies HashReply)
  }
})
