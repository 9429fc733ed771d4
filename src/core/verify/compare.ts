// The client's half of a compare-only full sync (HELLO flag NO_WRITE): the full sync's hello,
// read-and-checksum of the source and take of the replica's statuses, decided per chunk by the
// full sync's own rule (fullsync/plan.ts decideAll), so a dry run reports exactly what a real
// full sync would send. Nothing is sent but CHECKPOINTs (the flow-control lead, and the
// keep-alive) and DONE. The receiver's answer is checked against what its statuses said: a
// receiver whose VERIFY_RESULT contradicts its own statuses is refused, never believed.
import crypto from 'node:crypto'
import {ProtocolError, TransportError} from '../errors.js'
import {blockHasher, HASH_LENGTH, type BlockHasher} from '../hash/block-hash.js'
import {ChunkReader} from '../disk/chunk-reader.js'
import {digestSlots, type BlockSums} from '../disk/read-hash.js'
import type {SourceDisk} from '../disk/source-disk.js'
import type {PsfHeader} from '../psf/header.js'
import {CHECKPOINT_INTERVAL_MS, DEFAULT_CHECKPOINT_BYTES, MAX_CHECKPOINT_BLOCKS} from '../protocol/flow.js'
import {FrameType} from '../protocol/frame.js'
import {BlockKind, encodeDone, encodeU64, HelloFlag, type HelloOk} from '../protocol/messages.js'
import type {Carrier} from '../transport/carrier.js'
import {remoteErrorOf, ReceiverReplies} from '../fullsync/client-replies.js'
import {decideAll} from '../fullsync/plan.js'
import {exchangeHello} from '../fullsync/hello.js'

const READ_CHUNK = 4 << 20

/** One chunk as compared: the source's sums, the replica's statuses, the full sync's action per block (plan.ts SKIP/ZERO/SEND). */
export interface ComparedChunk {
  first: number
  count: number
  sums: BlockSums
  theirKinds: Uint8Array
  theirHashes: Buffer
  action: Uint8Array
}

export interface CompareOutcome {
  hello: HelloOk
  /** Blocks the full sync would send or zero (action not SKIP). */
  differing: number
  sourceDigest: string
  replicaDigest: string
}

export interface CompareContext {
  conn: Carrier
  source: SourceDisk
  header: PsfHeader
  diskSize: number
  /** The hello's fence flags (TAKE_OVER, DISCARD, TRUNCATE); NO_WRITE is added here. */
  flags: number
  onChunk: (c: ComparedChunk) => void
  onProgress?: (bytesCompared: number) => void
}

export async function compareWithReplica(ctx: CompareContext): Promise<CompareOutcome> {
  const {conn, header: h, diskSize} = ctx
  const bs = h.blockSize
  const blockCount = Math.ceil(diskSize / bs)
  const hasher = blockHasher(h.hashAlgo, h.replicaId)
  const ok = await exchangeHello({
    reader: conn.frames,
    writer: conn.writer,
    path: conn.replicaPath,
    header: h,
    diskSize,
    flags: ctx.flags | HelloFlag.NO_WRITE,
    // Never recorded by a compare-only session; random so it names nothing.
    nextCommit: crypto.randomBytes(16),
    // A refusal is reported as is: nothing is recorded in the .psf by a compare.
    refused: remoteErrorOf,
  })
  const replies = new ReceiverReplies(conn.frames, () => {})
  try {
    return await stream(ctx, replies, hasher, ok, bs, blockCount)
  } catch (err) {
    if (err instanceof TransportError) throw await replies.explain(err)
    throw err
  }
}

async function stream(
  ctx: CompareContext,
  replies: ReceiverReplies,
  hasher: BlockHasher,
  ok: HelloOk,
  bs: number,
  blockCount: number,
): Promise<CompareOutcome> {
  const {source, diskSize, conn} = ctx
  const checkpointEvery = Math.min(MAX_CHECKPOINT_BLOCKS, Math.max(1, Math.floor(DEFAULT_CHECKPOINT_BYTES / bs)))
  const zeroHashOf = (b: number) => hasher.zeroHash(Math.min(bs, diskSize - b * bs))
  const ours = hasher.createStream()
  const theirs = hasher.createStream()
  let replicaDigestKnown = true
  let differing = 0
  let lastCheckpoint = 0
  let lastCheckpointAt = performance.now()
  // Only checksums are needed: every chunk through a mapping where the addon can.
  const chunks = new ChunkReader(source, diskSize, bs, READ_CHUNK, Number.POSITIVE_INFINITY, hasher, () => true)
  for await (const chunk of chunks.chunks()) {
    const {first, count} = chunk
    const end = first + count
    const theirKinds = new Uint8Array(count)
    const theirHashes = Buffer.alloc(count * HASH_LENGTH)
    await replies.takeStatuses(count, theirKinds, theirHashes)
    const sums = chunk.sums as BlockSums
    const action = new Uint8Array(count)
    decideAll(sums, theirKinds, theirHashes, action, 0, count)
    for (let i = 0; i < count; i++) if (action[i] !== 0) differing++
    ours.update(digestSlots(sums, 0, count, (i) => zeroHashOf(first + i)))
    // The replica's digest as its statuses tell it: what its VERIFY_RESULT must say.
    for (let i = 0; i < count; i++) {
      const kind = theirKinds[i]
      if (kind === BlockKind.HASH) theirs.update(theirHashes.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH))
      else if (kind === BlockKind.ZERO) theirs.update(zeroHashOf(first + i))
      else replicaDigestKnown = false
    }
    ctx.onChunk({first, count, sums, theirKinds, theirHashes, action})
    ctx.onProgress?.(Math.min(diskSize, end * bs))
    if (end < blockCount && (end - lastCheckpoint >= checkpointEvery || performance.now() - lastCheckpointAt > CHECKPOINT_INTERVAL_MS)) {
      await conn.writer.send(FrameType.CHECKPOINT, encodeU64(end))
      lastCheckpoint = end
      lastCheckpointAt = performance.now()
    }
  }
  await source.checkNotShrunk()
  const sourceDigest = ours.digest()
  await conn.writer.send(FrameType.DONE, encodeDone({blockCount, digest: sourceDigest}))
  const result = await replies.verifyResult()
  const replicaDigest = theirs.digest()
  // A receiver that answers against its own statuses is lying or broken: refused.
  if (replicaDigestKnown && !result.digest.equals(replicaDigest))
    throw new ProtocolError('RECEIVER_INCONSISTENT', "the replica host's digest does not match the block statuses it sent")
  if (result.ok !== result.digest.equals(sourceDigest) || (differing === 0) !== result.ok)
    throw new ProtocolError(
      'RECEIVER_INCONSISTENT',
      `the replica host says the replica ${result.ok ? 'equals' : 'differs from'} the source, against the ${differing} differing blocks its statuses show`,
    )
  return {hello: ok, differing, sourceDigest: sourceDigest.toString('hex'), replicaDigest: result.digest.toString('hex')}
}
