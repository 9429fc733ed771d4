// Ship the frozen blocks as one bundle on the delta port: BUNDLE_BEGIN, then the blocks in
// order (contiguous ones read together; all-zero ones as run lengths), then BUNDLE_END with
// the digest of everything sent. Returns the hashes shipped, for the block hash index.
//
// Reads run ahead of the sender (several at once, up to READ_AHEAD_BYTES): a push's blocks
// are scattered, and one small read at a time left the channel idle between them (a 1% push
// spent more time waiting for reads than sending).
import {blockHasher} from '../hash/block-hash.js'
import {isAllZero} from '../hash/zero.js'
import {digestData, digestZero} from '../protocol/bundle-digest.js'
import {FrameType} from '../protocol/frame.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import {DATA_FIELDS_SIZE, encodeBundleBegin, encodeBundleEnd, encodeDataFields, encodeRange} from '../protocol/messages.js'
import type {RunSender} from '../compress/run-sender.js'
import type {FrozenSet} from './frozen-set.js'
import type {Throttle} from '../sync/throttle.js'
import {BufferPool, SharedLease} from '../util/buffer-pool.js'

const MAX_READ_BYTES = 4 << 20
const READ_AHEAD_BYTES = 16 << 20
const READ_AHEAD_RUNS = 32
/** Runs up to this size are read into pooled buffers (a push's runs are mostly one block). */
const POOLED_READ_BYTES = 256 << 10

export interface BundleStats {
  blocks: number
  dataBlocks: number
  zeroBlocks: number
  bytesSent: number
  /** Time the sender waited for reads (not the reads' own duration: they overlap sending). */
  readMs: number
  sendMs: number
  /** DATA / DATA_Z payload bytes sent. */
  wireBytes: number
  hashes: Map<number, Buffer>
}

interface Run {
  first: number
  count: number
}

/** Contiguous blocks, cut at MAX_READ_BYTES. */
function runsOf(blocks: number[], bs: number): Run[] {
  const perRead = Math.max(1, Math.floor(MAX_READ_BYTES / bs))
  const runs: Run[] = []
  for (let i = 0; i < blocks.length;) {
    let j = i + 1
    while (j < blocks.length && blocks[j] === blocks[j - 1] + 1 && j - i < perRead) j++
    runs.push({first: blocks[i], count: j - i})
    i = j
  }
  return runs
}

interface PendingRead {
  data: Promise<Buffer>
  bytes: number
  lease: SharedLease | undefined
}

/**
 * Reads the runs in order, keeping several in flight ahead of the consumer. Runs that fit go
 * into pooled buffers, leased: the sender retains the lease for every frame it lends out, and
 * the buffer is reused once the stream has taken them all.
 */
class ReadAhead {
  private readonly pending: PendingRead[] = []
  private next = 0
  private pendingBytes = 0

  constructor(
    private readonly frozen: FrozenSet,
    private readonly runs: Run[],
    private readonly bs: number,
    private readonly pool: BufferPool,
  ) {}

  private fill(): void {
    while (this.next < this.runs.length && this.pending.length < READ_AHEAD_RUNS && (this.pending.length === 0 || this.pendingBytes < READ_AHEAD_BYTES)) {
      const r = this.runs[this.next++]
      const bytes = r.count * this.bs
      const lease = !this.frozen.viaTracker && bytes <= POOLED_READ_BYTES ? new SharedLease(this.pool, this.pool.take(POOLED_READ_BYTES)) : undefined
      const data = this.frozen.read(r.first, r.count, lease?.buf)
      data.catch(() => {}) // awaited in order by take(); an early failure must not be "unhandled"
      this.pending.push({data, bytes, lease})
      this.pendingBytes += bytes
    }
  }

  /** The next run: its data, and its lease (drop it when done with the run) if pooled. */
  async take(): Promise<{data: Buffer; lease: SharedLease | undefined}> {
    this.fill()
    const head = this.pending.shift() as PendingRead
    this.pendingBytes -= head.bytes
    this.fill()
    return {data: await head.data, lease: head.lease}
  }
}

export async function sendBundle(
  frozen: FrozenSet,
  seq: number,
  diskSize: number,
  bs: number,
  hashAlgo: number,
  hashKey: Buffer,
  writer: FrameWriter,
  throttle: Throttle,
  compressor?: RunSender,
): Promise<BundleStats> {
  const hasher = blockHasher(hashAlgo, hashKey)
  const digest = hasher.createStream()
  const blocks = [...frozen.bitmap.setBlocks()].filter((b) => b * bs < diskSize)
  const stats: BundleStats = {blocks: blocks.length, dataBlocks: 0, zeroBlocks: 0, bytesSent: 0, readMs: 0, sendMs: 0, wireBytes: 0, hashes: new Map()}
  const runs = runsOf(blocks, bs)
  const reads = new ReadAhead(frozen, runs, bs, new BufferPool(READ_AHEAD_RUNS * 2 * POOLED_READ_BYTES, POOLED_READ_BYTES))
  await writer.send(FrameType.BUNDLE_BEGIN, encodeBundleBegin({seq, blockCount: blocks.length, diskSize}))
  let zeroStart = -1
  let zeroEnd = -1
  const flushZeros = async () => {
    if (zeroStart < 0) return
    const range = encodeRange(zeroStart, zeroEnd - zeroStart)
    // Behind the compressed pieces still on their way: the receiver takes blocks in order.
    if (compressor) await compressor.later(() => writer.send(FrameType.ZERO_RUN, range))
    else await writer.send(FrameType.ZERO_RUN, range)
    digestZero(digest, zeroStart, zeroEnd - zeroStart)
    zeroStart = -1
  }
  for (const {first, count} of runs) {
    const t0 = performance.now()
    const {data, lease} = await reads.take()
    const t1 = performance.now()
    stats.readMs += t1 - t0
    try {
      await sendRun(first, count, data, lease)
    } finally {
      lease?.drop()
    }
    stats.sendMs += performance.now() - t1
  }
  await flushZeros()
  if (compressor) {
    await compressor.drain()
    stats.wireBytes += compressor.wireBytes
  }
  await writer.send(FrameType.BUNDLE_END, encodeBundleEnd({seq, blockCount: blocks.length, digest: digest.digest()}))
  return stats

  async function sendRun(first: number, count: number, data: Buffer, lease: SharedLease | undefined): Promise<void> {
    const raw = async (b: number, block: Buffer, hash: Buffer) => {
      await throttle.take(block.length)
      if (lease) await writer.sendLent(FrameType.DATA, encodeDataFields(b, hash), block, lease.retain())
      else await writer.send(FrameType.DATA, encodeDataFields(b, hash), block)
    }
    // With compression: the non-zero neighbours gathered so far (their bytes are contiguous in `data`).
    let runK = -1
    let runHashes: Buffer[] = []
    const flushRun = async (endK: number) => {
      if (runK < 0 || !compressor) return
      const k0 = runK
      const hashes = runHashes
      runK = -1
      runHashes = []
      const view = data.subarray(k0 * bs, Math.min(endK * bs, diskSize - first * bs))
      await compressor.sendRun(first + k0, endK - k0, view, Buffer.concat(hashes), (i) =>
        raw(first + k0 + i, view.subarray(i * bs, Math.min((i + 1) * bs, view.length)), hashes[i]),
      )
      for (let i = 0; i < hashes.length; i++) digestData(digest, first + k0 + i, hashes[i])
    }
    for (let k = 0; k < count; k++) {
      const b = first + k
      const len = Math.min(bs, diskSize - b * bs)
      const block = data.subarray(k * bs, k * bs + len)
      if (isAllZero(block)) {
        await flushRun(k)
        stats.hashes.set(b, hasher.zeroHash(len))
        if (zeroStart >= 0 && zeroEnd === b) zeroEnd++
        else {
          await flushZeros()
          zeroStart = b
          zeroEnd = b + 1
        }
        stats.zeroBlocks++
        continue
      }
      await flushZeros()
      const hash = hasher.hash(block)
      stats.hashes.set(b, hash)
      stats.dataBlocks++
      stats.bytesSent += len
      if (compressor) {
        if (runK < 0) runK = k
        runHashes.push(hash)
        continue
      }
      await raw(b, block, hash)
      digestData(digest, b, hash)
      stats.wireBytes += len + DATA_FIELDS_SIZE
    }
    await flushRun(count)
  }
}
