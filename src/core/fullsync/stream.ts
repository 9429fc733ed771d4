// The body of a full sync: read and hash the source in order, take the replica's statuses for
// each chunk, decide (plan.ts), feed the digest and the index (proof.ts), send what differs
// (zero runs as lengths), and checkpoint so an interrupted sync resumes.
import {trace} from '../util/trace.js'
import {HASH_LENGTH, type BlockHasher} from '../hash/block-hash.js'
import type {SourceDisk} from '../disk/source-disk.js'
import {ChunkReader, type Chunk} from '../disk/chunk-reader.js'
import type {HeadStart} from '../disk/head-start.js'
import {digestSlots, type BlockSums} from '../disk/read-hash.js'
import {FrameType} from '../protocol/frame.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import {DATA_FIELDS_SIZE, encodeDataFields, encodeRange, encodeU64} from '../protocol/messages.js'
import type {RunSender} from '../compress/run-sender.js'
import type {ProgressSink, SyncProgress} from '../sync/progress.js'
import type {Throttle} from '../sync/throttle.js'
import type {ReceiverReplies} from './client-replies.js'
import type {IndexRecorder} from './proof.js'
import {decideAll, MAP_BELOW_SEND_SHARE, nextSendShare, redecideFilled, sendRuns, SKIP, ZERO} from './plan.js'
import {CHECKPOINT_INTERVAL_MS} from '../protocol/flow.js'

/** The chunk of a sync to a replica that exists (a seed, a rerun, a resumed sync); also the head start's. */
export const SEED_READ_CHUNK = 4 << 20
/**
 * The chunk of a sync to a missing replica. There every chunk is read and lent to the transport
 * until its checkpoint is acknowledged, so the chunks out (two checkpoints' worth) are most of
 * the client's memory, and smaller ones are held for less of a checkpoint each: 64 GiB fresh
 * local sync, peak RSS 170-178 MiB with 4 MiB chunks, 147-157 with 2, 141-145 with 1 (four runs
 * each, interleaved, with the slack at 1). A seed keeps 4 MiB: most of its chunks are mapped and
 * hold no buffer, and its 1% seed sync was ~15% slower with 2 MiB chunks (and 3 write stages).
 */
const FRESH_READ_CHUNK = 1 << 20

export interface StreamContext {
  source: SourceDisk
  diskSize: number
  bs: number
  blockCount: number
  hasher: BlockHasher
  writer: FrameWriter
  replies: ReceiverReplies
  index: IndexRecorder
  digest: {update(data: Buffer): unknown}
  throttle: Throttle
  p: SyncProgress
  progress: ProgressSink
  checkpointEvery: number
  /** The replica is missing: most blocks travel, so chunks are read, not mapped, from the start. */
  replicaMissing: boolean
  /** Checksums of the first chunks, made while the connection was made (disk/head-start.ts); not with replicaMissing. */
  headStart?: HeadStart
  /** The chunk reader, once made: the replies give its lent buffers back at checkpoint acks. */
  onChunks: (chunks: ChunkReader) => void
  /**
   * Chunks in page-aligned memory: the receiver is on this thread (a local target) and writes
   * the blocks sent from them with direct I/O without a copy. Over SSH they cost the client
   * CPU (1 GiB mixed disk: 1.8-1.9 CPU-s against 1.25-1.5 with shared memory) and gain nothing.
   */
  alignedChunks?: boolean
  /** Agreed compression: runs of blocks to send go through it (DATA_Z or DATA); absent, every block is a DATA. */
  runs?: RunSender
  beforeFill?: (firstBlock: number, runs: ReadonlyArray<readonly [number, number]>) => Promise<void>
}

export interface StreamTotals {
  zeroBytesSkipped: number
  blocksDiffering: number
  blocksZeroed: number
  /** DATA / DATA_Z payload bytes sent. */
  wireBytes: number
}

export async function streamDisk(ctx: StreamContext): Promise<StreamTotals> {
  const {diskSize, bs, blockCount, hasher, writer, p} = ctx
  const totals: StreamTotals = {zeroBytesSkipped: 0, blocksDiffering: 0, blocksZeroed: 0, wireBytes: 0}
  let zeroRunStart = -1
  const flushZeroRun = async (end: number) => {
    if (zeroRunStart < 0) return
    const range = encodeRange(zeroRunStart, end - zeroRunStart)
    zeroRunStart = -1
    // Behind the compressed pieces still on their way: the receiver takes blocks in order.
    if (ctx.runs) await ctx.runs.later(() => writer.send(FrameType.ZERO_RUN, range))
    else await writer.send(FrameType.ZERO_RUN, range)
  }
  let lastCheckpoint = 0
  let lastCheckpointAt = performance.now()
  const perChunk = Math.max(1, Math.floor((ctx.replicaMissing ? FRESH_READ_CHUNK : SEED_READ_CHUNK) / bs))
  const action = new Uint8Array(perChunk)
  // The replica's statuses of the chunk's blocks: kinds, and hashes at i * HASH_LENGTH.
  const theirKinds = new Uint8Array(perChunk)
  const theirHashes = Buffer.alloc(perChunk * HASH_LENGTH)
  const zeroHashOf = (b: number) => hasher.zeroHash(Math.min(bs, diskSize - b * bs))
  // Chunks lent to the transport come back at the receiver's checkpoint acks; two
  // checkpoints' worth (plus one, and the read-ahead) may be out at once: the receiver syncs
  // one checkpoint while the next streams. A slack of 4 was 12 MiB more resident for no speed.
  // The wait for room ends when the carrier gives the receiver up (client.ts: chunks.abort):
  // without that, a receiver stopped with SIGSTOP kept the client waiting here for minutes
  // past --timeout (test/core/fullsync/stopped-receiver.test.ts).
  const chunksPerCheckpoint = Math.ceil(ctx.checkpointEvery / perChunk)
  // The reader checksums each chunk as it reads it (in the thread pool where it can). While
  // few blocks travel (a seed, a rerun), chunks are checksummed through a mapping instead of
  // read, and only the blocks that differ are read (fill); while many do (a fresh replica),
  // reading them at once is cheaper than mapping and then reading. The last chunk with data decides.
  let lastSendShare = ctx.replicaMissing ? 1 : 0
  const mapWhen = () => lastSendShare < MAP_BELOW_SEND_SHARE
  const chunks = new ChunkReader(
    ctx.source,
    diskSize,
    bs,
    perChunk * bs,
    2 * chunksPerCheckpoint + 1,
    hasher,
    mapWhen,
    ctx.alignedChunks === true,
    ctx.headStart,
  )
  ctx.onChunks(chunks)
  // Per chunk, not per block: the statuses in one call, the decisions in a plain loop, the
  // digest and the index in one update each (per-block awaits and calls were most of the JS
  // thread's time in a seed sync, and that thread shares two cores with the checksums).
  for await (const chunk of chunks.chunks()) {
    const {first, count} = chunk
    const end = first + count
    if (first === 0) trace('stream: first chunk hashed')
    await ctx.replies.takeStatuses(count, theirKinds, theirHashes)
    if (first === 0) trace('stream: first statuses')
    const {sums, toSend} = await decideChunk(ctx, chunks, chunk, theirKinds, theirHashes, action)
    lastSendShare = nextSendShare(lastSendShare, sums.zero, count, toSend)
    // The digest and the index, over each block's final checksum (the zero hash for a zero block).
    const slots = digestSlots(sums, 0, count, (i) => zeroHashOf(first + i))
    ctx.digest.update(slots)
    await ctx.index.add(first, end, slots)
    // Send. When much of the chunk travels, hand the transport views of it and never reuse its
    // buffer; when a few blocks do, copy them and let the buffer be reused (a fresh buffer per
    // chunk costs page faults that dominated a 1%-changed seed). Kept at the first view lent,
    // not before: runs the compressor takes are copied out of it as they are handed over, so
    // a chunk sent compressed goes back to the reader at once (held until the checkpoint ack,
    // such chunks were most of the client's memory in a compressed fresh sync).
    const keepChunk = toSend * 4 >= count
    const sendBlock = async (b: number) => {
      if (keepChunk) chunk.keep()
      const i = b - first
      const len = Math.min(bs, diskSize - b * bs)
      const view = (chunk.data as Buffer).subarray(i * bs, i * bs + len)
      await ctx.throttle.take(len)
      await writer.send(FrameType.DATA, encodeDataFields(b, slots.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH)), keepChunk ? view : Buffer.from(view))
    }
    // With compression, blocks to send gather into runs of neighbours, sent at the next block that is not sent.
    let runFirst = -1
    const flushRun = async (upto: number) => {
      if (runFirst < 0 || !ctx.runs) return
      const i0 = runFirst - first
      const view = (chunk.data as Buffer).subarray(i0 * bs, Math.min(upto * bs, diskSize) - first * bs)
      const hashes = slots.subarray(i0 * HASH_LENGTH, (upto - first) * HASH_LENGTH)
      const from = runFirst
      runFirst = -1
      await ctx.runs.sendRun(from, upto - from, view, hashes, (k) => sendBlock(from + k))
    }
    for (let b = first; b < end; b++) {
      const i = b - first
      const len = Math.min(bs, diskSize - b * bs)
      if (action[i] === ZERO) {
        await flushRun(b)
        if (zeroRunStart < 0) zeroRunStart = b
        totals.blocksZeroed++
        continue
      }
      if (zeroRunStart >= 0) await flushZeroRun(b)
      if (action[i] === SKIP) {
        await flushRun(b)
        if (sums.zero[i] === 1) totals.zeroBytesSkipped += len
        continue
      }
      if (ctx.runs) {
        if (runFirst < 0) runFirst = b
      } else {
        await sendBlock(b)
        totals.wireBytes += len + DATA_FIELDS_SIZE
      }
      p.bytesSent += len
      totals.blocksDiffering++
    }
    await flushRun(end)
    p.bytesCompared = Math.min(diskSize, end * bs)
    ctx.progress(p)
    if (end - lastCheckpoint >= ctx.checkpointEvery || (performance.now() - lastCheckpointAt > CHECKPOINT_INTERVAL_MS && end < blockCount)) {
      await flushZeroRun(end)
      // Everything below `end` is sent before the checkpoint that names it.
      await ctx.runs?.drain()
      await writer.send(FrameType.CHECKPOINT, encodeU64(end))
      lastCheckpoint = end
      lastCheckpointAt = performance.now()
    }
  }
  trace('stream: every chunk decided')
  await flushZeroRun(blockCount)
  if (ctx.runs) {
    await ctx.runs.drain()
    totals.wireBytes += ctx.runs.wireBytes
  }
  return totals
}

/** Compare a chunk's checksums with the replica's statuses; a mapped chunk's sent blocks are read now. */
async function decideChunk(
  ctx: StreamContext,
  chunks: ChunkReader,
  chunk: Chunk,
  theirKinds: Uint8Array,
  theirHashes: Buffer,
  action: Uint8Array,
): Promise<{sums: BlockSums; toSend: number}> {
  const sums = chunk.sums as BlockSums
  const toSend = decideAll(sums, theirKinds, theirHashes, action, 0, chunk.count)
  if (!chunk.mapped || toSend === 0) return {sums, toSend}
  const runs = sendRuns(action, chunk.count)
  await ctx.beforeFill?.(chunk.first, runs)
  const fresh = await chunks.fill(chunk, runs)
  return redecideFilled(sums, fresh, runs, theirKinds, theirHashes, action)
}
