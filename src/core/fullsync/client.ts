// The client side of a full sync: read and hash the source in order, compare each block with
// the status the receiver streams for its replica, send only what differs (zero runs as
// lengths), checkpoint so an interrupted sync resumes, then compare whole-disk digests. Only a
// proved sync resets the change record and stores the block hash index.
import type {BigIntStats} from 'node:fs'
import path from 'node:path'
import {UsageError, VerifyError} from '../errors.js'
import {blockHasher, HASH_LENGTH} from '../hash/block-hash.js'
import {SourceDisk, type ReadFault} from '../disk/source-disk.js'
import {ChunkReader} from '../disk/chunk-reader.js'
import {digestSlots, type BlockSums} from '../disk/read-hash.js'
import {Bitmap} from '../psf/bitmap.js'
import {HeaderFlag} from '../psf/header.js'
import {HASHES_PER_PAGE, Region} from '../psf/layout.js'
import {PsfFile, psfPathFor} from '../psf/psf-file.js'
import {FrameType, PROTOCOL_VERSION} from '../protocol/frame.js'
import {BlockKind, decodeHelloOk, encodeDataFields, encodeDone, encodeHello, encodeRange, encodeU64, HelloFlag, ReplicaStateKind, SyncMode} from '../protocol/messages.js'
import {parseTarget} from '../target/target.js'
import {connectReceiver} from '../transport/connect.js'
import {noProgress, type ProgressSink, type SyncProgress} from '../sync/progress.js'
import {ReceiverReplies, remoteErrorOf} from './client-replies.js'
import {Throttle} from '../sync/throttle.js'
import {acquireDiskLock} from '../sync/push-lock.js'
import {statPatch} from '../psf/change-record.js'
import {TrackerControlClient} from '../tracker/control-client.js'
import {checkNoUnreachableTracker} from '../tracker/tracker-lock.js'
import {settledStat} from '../psf/disk-stamp.js'
import {ProtocolError, TransportError} from '../errors.js'

const READ_CHUNK = 4 << 20
/** Durable resume points (and buffers lent to the transport come back) every this many bytes. */
const DEFAULT_CHECKPOINT_BYTES = 64 << 20
const SKIP = 0
const ZERO = 1
const SEND = 2
/** Chunks are checksummed through a mapping (not read) while the last one sent less than this share of its blocks. */
const MAP_BELOW_SEND_SHARE = 0.25

/**
 * Decide blocks [from, to) of a chunk: a zero block is skipped where the replica's is zero too
 * and sent as a zero run otherwise; any other is skipped where the replica has its checksum and
 * sent otherwise. Returns how many are to be sent.
 */
function decideAll(sums: BlockSums, theirKinds: Uint8Array, theirHashes: Buffer, action: Uint8Array, from: number, to: number): number {
  let send = 0
  for (let i = from; i < to; i++) {
    if (sums.zero[i] === 1) action[i] = theirKinds[i] === BlockKind.ZERO ? SKIP : ZERO
    else {
      const at = i * HASH_LENGTH
      const same = theirKinds[i] === BlockKind.HASH && sums.sums.compare(theirHashes, at, at + HASH_LENGTH, at, at + HASH_LENGTH) === 0
      action[i] = same ? SKIP : SEND
      if (!same) send++
    }
  }
  return send
}

/** The runs [first, end) of blocks to SEND in a chunk's actions. */
function sendRuns(action: Uint8Array, count: number): Array<[number, number]> {
  const runs: Array<[number, number]> = []
  for (let i = 0; i < count; i++) {
    if (action[i] !== SEND) continue
    const last = runs[runs.length - 1]
    if (last && last[1] === i) last[1] = i + 1
    else runs.push([i, i + 1])
  }
  return runs
}

export interface FullsyncOptions {
  truncateReplica?: boolean
  /** Make the replica durable and record a resume point at least this often (bytes of disk). */
  checkpointBytes?: number
  bwlimitBytesPerSecond?: number
  /** Record an unknown replica host key in known_hosts (like StrictHostKeyChecking=accept-new). */
  acceptNewHostKey?: boolean
  /** Tests only: fail source reads as a failing device would (EIO at an offset). */
  sourceReadFault?: ReadFault
  /** Tests only: runs before a mapped chunk's differing blocks are read (fill), as a live disk's writes may land. */
  beforeFill?: (firstBlock: number, runs: ReadonlyArray<readonly [number, number]>) => Promise<void>
  /** The caller (push) already holds the disk lock. */
  lockHeld?: boolean
  progress?: ProgressSink
  log?: (line: string) => void
}

export interface FullsyncResult {
  disk: string
  target: string
  bytesTotal: number
  bytesCompared: number
  bytesSent: number
  zeroBytesSkipped: number
  blocksDiffering: number
  blocksZeroed: number
  resumedAtBlock: number
  resumedPercent: number
  seconds: number
  digest: string
  hashAlgo: string
}

export async function fullsync(disk: string, opts: FullsyncOptions = {}): Promise<FullsyncResult> {
  const started = performance.now()
  const lock = opts.lockHeld ? undefined : await acquireDiskLock(disk, 'fullsync')
  try {
    const psf = await PsfFile.open(psfPathFor(disk))
    try {
      const source = await SourceDisk.open(disk, opts.sourceReadFault)
      try {
        const tracker = await TrackerControlClient.tryConnect(disk)
        if (!tracker) checkNoUnreachableTracker(disk, psf.path)
        try {
          return await runFullsync(disk, psf, source, tracker, opts, started)
        } finally {
          await tracker?.close()
        }
      } finally {
        await source.close()
      }
    } finally {
      await psf.close()
    }
  } finally {
    await lock?.release()
  }
}

async function runFullsync(disk: string, psf: PsfFile, source: SourceDisk, tracker: TrackerControlClient | null, opts: FullsyncOptions, started: number): Promise<FullsyncResult> {
  const h = psf.header
  if (source.size < h.diskSize && !opts.truncateReplica) {
    throw new UsageError('SOURCE_SHRANK', `${disk} is ${source.size} bytes, smaller than the ${h.diskSize} bytes recorded at init`, {
      hint: 'a disk that shrank cannot be replicated safely; if this is intended, run `vdrep init --force` and a full sync with --truncate-replica',
    })
  }
  if (tracker && source.size !== h.diskSize) {
    throw new UsageError('DISK_RESIZED_WHILE_TRACKED', `${disk} is ${source.size} bytes but was ${h.diskSize} when its tracker started`, {
      hint: 'stop `vdrep track` (the .psf is laid out for the old size), run the full sync, then start the tracker again',
    })
  }
  const target = parseTarget(h.settings.target)
  if (target.kind === 'local') checkTargetNotSource(disk, target.path)
  const hasher = blockHasher(h.hashAlgo, h.replicaId)
  const bs = h.blockSize
  const diskSize = source.size
  const blockCount = Math.ceil(diskSize / bs)
  const sameLayout = diskSize === h.diskSize
  const progress = opts.progress ?? noProgress
  const p: SyncProgress = {phase: 'connect', bytesTotal: diskSize, bytesCompared: 0, bytesSent: 0, bytesDurable: 0}
  progress(p)

  // The stat before reading: if anything but a tracker writes the disk during or after the sync,
  // its mtime moves past this and the next push knows the change record missed it.
  const statAtStart = tracker ? await source.stat() : await settledStat(() => source.stat()) // kept only without a tracker
  const conn = await connectReceiver(target, {port: h.settings.fullsyncPort, log: opts.log, acceptNewHostKey: opts.acceptNewHostKey, ssh: h.settings.ssh, diskSize})
  // With a tracker running, the sync covers what was dirty when it began; writes made while it
  // runs stay in the active record for the next push.
  const frozen = tracker ? await tracker.freeze({preserve: false}) : undefined
  let proved = false
  const reader = conn.frames
  const writer = conn.writer
  let replies: ReceiverReplies | undefined
  let chunksRef: ChunkReader | undefined
  try {
    await writer.send(FrameType.HELLO, encodeHello({
      version: PROTOCOL_VERSION, mode: SyncMode.FULLSYNC, hashAlgo: h.hashAlgo, blockSize: bs, diskSize,
      replicaId: h.replicaId, flags: opts.truncateReplica ? HelloFlag.TRUNCATE_REPLICA : 0, path: conn.replicaPath,
    }))
    const first = await reader.next()
    if (!first) throw new TransportError('RECEIVER_CLOSED', 'the replica host closed the connection during the hello')
    if (first.type === FrameType.ERROR) throw remoteErrorOf(first.payload)
    if (first.type !== FrameType.HELLO_OK) throw new ProtocolError('FRAME_UNEXPECTED', `expected HELLO_OK, got frame type ${first.type}`)
    const ok = decodeHelloOk(first.payload)
    if (ok.version !== PROTOCOL_VERSION) throw new ProtocolError('VERSION_MISMATCH', `the receiver speaks protocol version ${ok.version}; this client speaks ${PROTOCOL_VERSION}`, {hint: 'install the same vdrep release on both hosts'})
    const resumedAtBlock = ok.state === ReplicaStateKind.INCOMPLETE ? ok.resumeBlock : 0
    if (resumedAtBlock > 0) opts.log?.(`resuming at ${Math.floor((resumedAtBlock / blockCount) * 100)}% (block ${resumedAtBlock} of ${blockCount} is durable on the replica)`)

    // The index is rewritten as we go; until the proof passes it must not be trusted.
    if (sameLayout && h.flags & HeaderFlag.INDEX_VALID) await psf.updateHeader((cur) => ({flags: cur.flags & ~HeaderFlag.INDEX_VALID}))
    const indexAll = sameLayout ? undefined : Buffer.alloc(blockCount * HASH_LENGTH)
    const indexBuf = Buffer.alloc(64 * HASHES_PER_PAGE * HASH_LENGTH)
    let indexStart = 0

    replies = new ReceiverReplies(reader, (upto) => {
      // The receiver has written, synced and re-read everything below `upto`: buffers lent to
      // the transport for those blocks are free again.
      chunksRef?.releaseUpTo(upto)
      p.bytesDurable = Math.min(diskSize, upto * bs)
      progress(p)
    })
    const throttle = new Throttle(opts.bwlimitBytesPerSecond ?? 0)
    // Capped well below the receiver's scan lead (SCAN_LEAD_BLOCKS), which waits for checkpoints.
    const checkpointEvery = Math.min(1 << 16, Math.max(1, Math.floor((opts.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES) / bs)))
    let lastCheckpoint = 0
    let lastCheckpointAt = performance.now()
    const digest = hasher.createStream()
    let zeroRunStart = -1
    let zeroBytesSkipped = 0
    let blocksDiffering = 0
    let blocksZeroed = 0
    const flushZeroRun = async (end: number) => {
      if (zeroRunStart < 0) return
      await writer.send(FrameType.ZERO_RUN, encodeRange(zeroRunStart, end - zeroRunStart))
      zeroRunStart = -1
    }
    p.phase = 'compare'

    const indexBatch = 64 * HASHES_PER_PAGE
    const perChunk = Math.max(1, Math.floor(READ_CHUNK / bs))
    const action = new Uint8Array(perChunk)
    // The replica's statuses of the chunk's blocks: kinds, and hashes at i * HASH_LENGTH.
    const theirKinds = new Uint8Array(perChunk)
    const theirHashes = Buffer.alloc(perChunk * HASH_LENGTH)
    const zeroHashOf = (b: number) => hasher.zeroHash(Math.min(bs, diskSize - b * bs))
    // Chunks lent to the transport come back at the receiver's checkpoint acks; two
    // checkpoints' worth (plus the read-ahead) may be out at once.
    const chunksPerCheckpoint = Math.ceil(checkpointEvery / perChunk)
    // The reader checksums each chunk as it reads it (in the thread pool where it can). While
    // few blocks travel (a seed, a rerun), chunks are checksummed through a mapping instead of
    // read, and only the blocks that differ are read (fill); while many do (a fresh replica),
    // reading them at once is cheaper than mapping and then reading. The last chunk decides.
    let lastSendShare = ok.state === ReplicaStateKind.MISSING ? 1 : 0
    const chunks = new ChunkReader(source, diskSize, bs, READ_CHUNK, 2 * chunksPerCheckpoint + 4, hasher, () => lastSendShare < MAP_BELOW_SEND_SHARE)
    chunksRef = chunks
    // Per chunk, not per block: the statuses in one call, the decisions in a plain loop, the
    // digest and the index in one update each (per-block awaits and calls were most of the JS
    // thread's time in a seed sync, and that thread shares two cores with the checksums).
    for await (const chunk of chunks.chunks()) {
      const {first, count} = chunk
      let sums = chunk.sums as BlockSums
      const end = first + count
      await replies.takeStatuses(count, theirKinds, theirHashes)
      // Pass 1: compare each block's checksum with the replica's status, decide.
      let toSend = decideAll(sums, theirKinds, theirHashes, action, 0, count)
      // A mapped chunk has no bytes: read the blocks that travel, and decide them again on
      // what was read (a live disk may have changed them since): what is sent is what is hashed.
      if (chunk.mapped && toSend > 0) {
        const runs = sendRuns(action, count)
        await opts.beforeFill?.(first, runs)
        const fresh = await chunks.fill(chunk, runs)
        const merged = {sums: Buffer.from(sums.sums), zero: Uint8Array.from(sums.zero)}
        toSend = 0
        for (const [a, z] of runs) {
          merged.zero.set(fresh.zero.subarray(a, z), a)
          fresh.sums.copy(merged.sums, a * HASH_LENGTH, a * HASH_LENGTH, z * HASH_LENGTH)
          toSend += decideAll(merged, theirKinds, theirHashes, action, a, z)
        }
        sums = merged
      }
      const data = chunk.data
      lastSendShare = toSend / count
      // The digest and the index, over each block's final checksum (the zero hash for a zero block).
      const slots = digestSlots(sums, 0, count, (i) => zeroHashOf(first + i))
      digest.update(slots)
      if (indexAll) slots.copy(indexAll, first * HASH_LENGTH)
      else {
        for (let b = first; b < end; ) {
          const upto = Math.min(end, indexStart + indexBatch)
          slots.copy(indexBuf, (b - indexStart) * HASH_LENGTH, (b - first) * HASH_LENGTH, (upto - first) * HASH_LENGTH)
          if (upto === indexStart + indexBatch || upto === blockCount) {
            await psf.writeIndexPages(indexStart, indexBuf.subarray(0, (upto - indexStart) * HASH_LENGTH))
            indexStart = upto
          }
          b = upto
        }
      }
      // Pass 2: send. When much of the chunk travels, hand the transport views of it and never
      // reuse its buffer; when a few blocks do, copy them and let the buffer be reused (a fresh
      // buffer per chunk costs page faults that dominated a 1%-changed seed).
      const keepChunk = toSend * 4 >= count
      if (keepChunk && toSend > 0) chunk.keep()
      for (let b = first; b < end; b++) {
        const i = b - first
        const len = Math.min(bs, diskSize - b * bs)
        if (action[i] === ZERO) {
          if (zeroRunStart < 0) zeroRunStart = b
          blocksZeroed++
          continue
        }
        if (zeroRunStart >= 0) await flushZeroRun(b)
        if (action[i] === SKIP) {
          if (sums.zero[i] === 1) zeroBytesSkipped += len
          continue
        }
        const view = (data as Buffer).subarray(i * bs, i * bs + len)
        await throttle.take(len)
        await writer.send(FrameType.DATA, encodeDataFields(b, slots.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH)), keepChunk ? view : Buffer.from(view))
        p.bytesSent += len
        blocksDiffering++
      }
      p.bytesCompared = Math.min(diskSize, end * bs)
      progress(p)
      if (end - lastCheckpoint >= checkpointEvery || (performance.now() - lastCheckpointAt > 10_000 && end < blockCount)) {
        await flushZeroRun(end)
        await writer.send(FrameType.CHECKPOINT, encodeU64(end))
        lastCheckpoint = end
        lastCheckpointAt = performance.now()
      }
    }
    await flushZeroRun(blockCount)
    // Before the proof can mark the replica complete: a source cut short under the sync had
    // its missing end read as holes, so the replica would be proved equal to zeros.
    await source.checkNotShrunk()
    const ourDigest = digest.digest()
    p.phase = 'verify'
    progress(p)
    await writer.send(FrameType.DONE, encodeDone({blockCount, digest: ourDigest}))
    const verdict = await replies.verifyResult()
    if (!verdict.ok) {
      throw new VerifyError(`the replica's digest ${verdict.digest.toString('hex').slice(0, 16)}… does not match the source's ${ourDigest.toString('hex').slice(0, 16)}…; the replica stays marked incomplete`, {
        hint: 'run `vdrep fullsync` again; if it fails again, check the replica host\'s storage',
      })
    }
    writer.end()
    await recordProvedSync(psf, diskSize, indexAll, tracker ? undefined : statAtStart, ok.lastSeq)
    proved = true
    await tracker?.complete(true)
    p.phase = 'done'
    progress(p)
    return {
      disk,
      target: h.settings.target,
      bytesTotal: diskSize,
      bytesCompared: diskSize,
      bytesSent: p.bytesSent,
      zeroBytesSkipped,
      blocksDiffering,
      blocksZeroed,
      resumedAtBlock,
      resumedPercent: Math.floor((resumedAtBlock / blockCount) * 100),
      seconds: (performance.now() - started) / 1000,
      digest: ourDigest.toString('hex'),
      hashAlgo: hasher.name,
    }
  } catch (err) {
    if (frozen && !proved) await tracker?.complete(false).catch(() => {})
    if (replies && err instanceof TransportError) throw await replies.explain(err)
    throw err
  } finally {
    conn.abort()
    await conn.close().catch(() => {})
  }
}

/**
 * The proof passed: bump the generation, clear the change record, trust the new index. Without a
 * tracker, the source's stat at the start is recorded as a clean point: a later write by anything
 * else shows as a changed mtime. With a tracker, it owns the bitmaps (cleared through it).
 *
 * The replica's push sequence (`replicaSeq`, from its HELLO_OK; nothing else wrote it during
 * the session, which held the replica) becomes this disk's: a proved full sync is the point both
 * sides agree on. Without it, a .psf whose record fell behind the replica's (restored from a
 * backup, re-made with `init --force`, a push whose answer was lost) would be told "sequence
 * mismatch, full sync needed" by every push after the full sync meant to cure it.
 */
async function recordProvedSync(psf: PsfFile, diskSize: number, indexAll: Buffer | undefined, stat: BigIntStats | undefined, replicaSeq: number): Promise<void> {
  const h = psf.header
  // Bits changed on the flags as they are on disk when written, not as they were at open: a
  // tracker that stopped during the sync has set CLEAN_SHUTDOWN with its stamp since, and
  // writing the old flags back would switch off the check of writes made without a tracker.
  const adjust = (f: number): number => ((f | HeaderFlag.INDEX_VALID | (stat ? HeaderFlag.CLEAN_SHUTDOWN : 0)) & ~HeaderFlag.NEEDS_FULL_SYNC)
  const flags = adjust(h.flags)
  const patch = {generation: h.generation + 1, lastSyncMs: Date.now(), diskSize, lastSeq: replicaSeq, pendingSeq: 0, ...(stat ? statPatch(stat) : {})}
  if (indexAll) {
    // The disk grew: the .psf is laid out anew for the new size, then swapped in atomically.
    // INDEX_VALID only once the index pages are durable.
    await PsfFile.create(psf.path, {...h, ...patch, flags: flags & ~HeaderFlag.INDEX_VALID, counter: h.counter + 1n})
    const fresh = await PsfFile.open(psf.path)
    try {
      await fresh.writeIndexPages(0, indexAll)
      await fresh.sync()
      await fresh.updateHeader((cur) => ({flags: cur.flags | HeaderFlag.INDEX_VALID}))
    } finally {
      await fresh.close()
    }
    return
  }
  await psf.sync()
  if (stat) {
    const empty = new Bitmap(psf.layout.blockCount)
    await psf.writeBitmap(Region.ACTIVE, empty)
    await psf.writeBitmap(Region.INFLIGHT, empty)
  }
  await psf.updateHeader((cur) => ({...patch, flags: adjust(cur.flags)}))
}

function checkTargetNotSource(disk: string, replica: string): void {
  const d = path.resolve(disk)
  const r = path.resolve(replica)
  if (r === d || r === psfPathFor(d) || r.startsWith(`${d}/`)) {
    throw new UsageError('TARGET_IS_SOURCE', `the target ${replica} is the source disk or its state file`, {hint: 'choose a replica path elsewhere'})
  }
}
