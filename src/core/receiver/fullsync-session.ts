// The receiver's side of a full sync (port 31031). It scans the replica and streams a
// status per block (zero, or its hash) while the client streams the blocks that differ.
// At each CHECKPOINT it syncs the replica, folds the proved blocks into its digest (re-reading
// what it wrote, so the proof is of what is on disk) and records the durable resume point.
// At DONE it compares digests; only a match marks the replica complete.
import {ProtocolError, VerifyError} from '../errors.js'
import {blockHasher, HASH_LENGTH, type BlockHasher, type StreamHasher} from '../hash/block-hash.js'
import {readChunks} from '../disk/chunk-reader.js'
import {canMapHashing, digestSlots, hashRuns, sumOf, type BlockSums} from '../disk/read-hash.js'
import {holeMap} from '../disk/hole-map.js'
import {FrameType} from '../protocol/frame.js'
import type {FrameSource} from '../protocol/frame-reader.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import {
  BlockKind, decodeData, decodeDone, decodeRange, decodeU64, encodeBlockStatus, encodeHelloOk, encodeU64, encodeVerifyResult,
  HelloFlag, MAX_STATUS_BATCH, ReplicaStateKind, type Hello,
} from '../protocol/messages.js'
import {PROTOCOL_VERSION} from '../protocol/frame.js'
import fs from 'node:fs/promises'
import {journalPathFor} from './journal.js'
import {ReplicaFile} from './replica-file.js'
import type {ReplicaState} from './replica-state.js'
import type {SessionLog} from './session-log.js'

/**
 * The replica is scanned in chunks this large when it can be mapped (nothing is buffered:
 * fewer, larger pool tasks and mappings measured 0.33 -> 0.31 s of engine time for a 1 GiB
 * seed, 32 MiB against 4 MiB), else in chunks of SCAN_READ_CHUNK (each is a buffer, and the
 * read-ahead holds a few).
 */
const SCAN_MAPPED_CHUNK = 32 << 20
const SCAN_READ_CHUNK = 4 << 20
/** The fold re-reads written blocks in runs of at most this much (one reused buffer). */
const FOLD_RUN_BYTES = 4 << 20
const MAX_WRITES_IN_FLIGHT = 8
const MAX_RUN_BYTES = 4 << 20
/** How far the scan may run ahead of the client's checkpoints (clients checkpoint more often). */
export const SCAN_LEAD_BLOCKS = 1 << 17
const RECORD_EVERY_MS = 1000
const RECORD_EVERY_BYTES = 256 << 20

export async function runFullsyncSession(hello: Hello, replicaPath: string, reader: FrameSource, writer: FrameWriter, log: SessionLog): Promise<void> {
  const hasher = blockHasher(hello.hashAlgo, hello.replicaId)
  // A full sync rewrites everything: a leftover delta journal has nothing left to say.
  if (await fs.rm(journalPathFor(replicaPath)).then(() => true, () => false)) log(`${replicaPath}: discarded a leftover delta journal`)
  const replica = await ReplicaFile.open(replicaPath, hello)
  try {
    const session = new FullsyncReceiver(hello, replica, hasher, reader, writer, log)
    await session.run()
  } finally {
    await replica.close()
  }
}

class FullsyncReceiver {
  private readonly bs: number
  private readonly blockCount: number
  /** Scanned chunks not yet wholly folded into the digest, in block order. */
  private readonly scanned: Array<{first: number; count: number; sums: BlockSums}> = []
  private scannedUpto = 0
  private readonly written = new Map<number, Buffer>()
  private readonly zeroed = new Set<number>()
  private digestedUpto = 0
  private readonly digest: StreamHasher
  private inFlight: Promise<unknown>[] = []
  private scanError: Error | undefined
  private writeError: Error | undefined
  private checkpointRequested = 0
  private checkpoints: Promise<void> = Promise.resolve()
  private checkpointError: Error | undefined
  private foldBuf: Buffer | undefined
  private recordedUpto = 0
  private recordedAt = performance.now()
  private scanWaiter: (() => void) | undefined
  private stopped = false
  private bytesWritten = 0
  /** Contiguous blocks waiting to be written together, and the receive memory they hold. */
  private pendingRun: {start: number; end: number; buffers: Buffer[]; bytes: number; releases: Array<() => void>} | undefined

  constructor(
    private readonly hello: Hello,
    private readonly replica: ReplicaFile,
    private readonly hasher: BlockHasher,
    private readonly reader: FrameSource,
    private readonly writer: FrameWriter,
    private readonly log: SessionLog,
  ) {
    this.bs = hello.blockSize
    this.blockCount = Math.ceil(hello.diskSize / hello.blockSize)
    this.digest = hasher.createStream()
  }

  private blockLen(b: number): number {
    return Math.min(this.bs, this.hello.diskSize - b * this.bs)
  }

  async run(): Promise<void> {
    const {replica, hello} = this
    const prior = replica.prior
    await this.writer.send(FrameType.HELLO_OK, encodeHelloOk({
      version: PROTOCOL_VERSION,
      state: prior.existed ? (prior.state?.complete ? ReplicaStateKind.COMPLETE : ReplicaStateKind.INCOMPLETE) : ReplicaStateKind.MISSING,
      replicaSize: prior.size,
      resumeBlock: prior.resumeBlock,
      replicaId: prior.state ? Buffer.from(prior.state.replicaId, 'hex') : Buffer.alloc(16),
      generation: prior.state?.generation ?? 0,
      lastSeq: prior.state?.lastSeq ?? 0,
    }))
    await replica.beginFullsync(hello.diskSize, (hello.flags & HelloFlag.TRUNCATE_REPLICA) !== 0)
    const scan = this.scan().catch((err: Error) => {
      this.scanError = err
      // The client may be waiting for statuses and send nothing more: wake the receive loop.
      this.reader.abort?.(err)
    })
    try {
      await this.receive()
    } finally {
      this.stopped = true
      this.scanWaiter?.()
      await scan
      await this.checkpoints // never close the replica under a running sync or fold
    }
  }

  /** Stream the replica's per-block status to the client, in order. */
  private async scan(): Promise<void> {
    // Only the checksums are needed: through a mapping where the addon can (no copy out of the
    // page cache), else read and checksummed in the thread pool, else here.
    const chunkBytes = canMapHashing(this.replica, this.hasher) ? SCAN_MAPPED_CHUNK : SCAN_READ_CHUNK
    for await (const chunk of readChunks(this.replica, this.hello.diskSize, this.bs, chunkBytes, this.hasher, () => true)) {
      const sums = chunk.sums as BlockSums
      this.scanned.push({first: chunk.first, count: chunk.count, sums})
      for (let start = 0; start < chunk.count; start += MAX_STATUS_BATCH) {
        const count = Math.min(MAX_STATUS_BATCH, chunk.count - start)
        const kinds = new Uint8Array(count)
        let hashed = 0
        for (let i = 0; i < count; i++) {
          const zero = sums.zero[start + i] === 1
          kinds[i] = zero ? BlockKind.ZERO : BlockKind.HASH
          if (!zero) hashed++
        }
        // The checksums of the HASH blocks, back to back: the chunk's slots as they are when
        // no block is zero, else gathered.
        const hashes = hashed === count ? sums.sums.subarray(start * HASH_LENGTH, (start + count) * HASH_LENGTH) : Buffer.allocUnsafe(hashed * HASH_LENGTH)
        if (hashed !== count) {
          for (let i = 0, at = 0; i < count && hashed > 0; i++) {
            if (kinds[i] !== BlockKind.HASH) continue
            sums.sums.copy(hashes, at, (start + i) * HASH_LENGTH, (start + i + 1) * HASH_LENGTH)
            at += HASH_LENGTH
          }
        }
        this.scannedUpto = chunk.first + start + count
        // Stay at most SCAN_LEAD_BLOCKS ahead of the client's last checkpoint request, so
        // the statuses in flight stay bounded (the client relies on it; see receiver-replies).
        while (this.scannedUpto - this.checkpointRequested > SCAN_LEAD_BLOCKS && !this.stopped) await new Promise<void>((r) => (this.scanWaiter = r))
        // The session ended (an error, or the client is done): nobody reads statuses any more,
        // and a send could wait forever for a client that is itself blocked sending to us,
        // holding back the ERROR frame that tells it why.
        if (this.stopped) return
        await this.writer.send(FrameType.BLOCK_STATUS, encodeBlockStatus({startBlock: chunk.first + start, kinds, hashes}))
      }
    }
  }

  private async receive(): Promise<void> {
    for (;;) {
      if (this.scanError) throw this.scanError
      if (this.checkpointError) throw this.checkpointError
      const frame = await this.reader.next()
      if (!frame) throw new ProtocolError('UNEXPECTED_EOF', 'the client closed the connection before the sync was done')
      switch (frame.type) {
        case FrameType.DATA:
          await this.onData(frame.payload, frame.body, frame.release)
          break
        case FrameType.ZERO_RUN:
          await this.onZeroRun(frame.payload)
          break
        case FrameType.CHECKPOINT:
          await this.checkpoint(decodeU64(frame.payload, 'CHECKPOINT'))
          break
        case FrameType.DONE:
          await this.onDone(frame.payload)
          return
        default:
          throw new ProtocolError('FRAME_UNEXPECTED', `unexpected frame type ${frame.type} during a full sync`)
      }
    }
  }

  private checkBlock(b: number, what: string): void {
    if (b >= this.blockCount) throw new ProtocolError('BLOCK_OUT_OF_RANGE', `${what} for block ${b}, but the disk has ${this.blockCount} blocks`)
    if (b < this.checkpointRequested) throw new ProtocolError('BLOCK_BEHIND_CHECKPOINT', `${what} for block ${b}, already behind checkpoint ${this.checkpointRequested}`)
    if (b >= this.scannedUpto) throw new ProtocolError('BLOCK_NOT_SCANNED', `${what} for block ${b} before its status was sent`)
  }

  private async onData(payload: Buffer, body?: Buffer, release?: () => void): Promise<void> {
    const {block, hash, data} = decodeData(payload, body)
    this.checkBlock(block, 'DATA')
    if (data.length !== this.blockLen(block)) throw new ProtocolError('BLOCK_BAD_LENGTH', `DATA for block ${block} has ${data.length} bytes, expected ${this.blockLen(block)}`)
    if (!this.hasher.hash(data).equals(hash)) throw new ProtocolError('BLOCK_BAD_HASH', `DATA for block ${block} does not match its hash; refusing to write it`)
    this.written.set(block, Buffer.from(hash))
    this.zeroed.delete(block)
    this.bytesWritten += data.length
    // Contiguous blocks are gathered into one positioned writev (fewer syscalls and thread hops).
    if (this.pendingRun && this.pendingRun.end === block && this.pendingRun.bytes < MAX_RUN_BYTES) {
      this.pendingRun.buffers.push(data)
      if (release) this.pendingRun.releases.push(release)
      this.pendingRun.end++
      this.pendingRun.bytes += data.length
    } else {
      await this.flushRun()
      this.pendingRun = {start: block, end: block + 1, buffers: [data], bytes: data.length, releases: release ? [release] : []}
    }
  }

  private async flushRun(): Promise<void> {
    const run = this.pendingRun
    if (!run) return
    this.pendingRun = undefined
    const written = this.replica.writeRun(run.buffers, run.start * this.bs)
    // The received bytes are the reader's to reuse once the write is done with them.
    if (run.releases.length > 0) void written.then(releaseAll(run.releases), releaseAll(run.releases))
    await this.track(written)
  }

  private async onZeroRun(payload: Buffer): Promise<void> {
    const {start, count} = decodeRange(payload, 'ZERO_RUN')
    if (count === 0) throw new ProtocolError('ZERO_RUN_EMPTY', 'ZERO_RUN of no blocks')
    this.checkBlock(start, 'ZERO_RUN')
    this.checkBlock(start + count - 1, 'ZERO_RUN')
    await this.flushRun()
    for (let b = start; b < start + count; b++) {
      this.zeroed.add(b)
      this.written.delete(b)
    }
    const offset = start * this.bs
    await this.track(this.replica.zeroRange(offset, Math.min(count * this.bs, this.hello.diskSize - offset)))
  }

  private async track(p: Promise<unknown>): Promise<void> {
    // Keep the first write error (ENOSPC, EIO) and fail the session with it; never leave a
    // rejected promise unobserved (that would end the process instead of answering the client).
    p.catch((err: Error) => {
      this.writeError ??= err
    })
    if (this.writeError) throw this.writeError
    this.inFlight.push(p)
    if (this.inFlight.length >= MAX_WRITES_IN_FLIGHT) await this.settleWrites()
  }

  private async settleWrites(): Promise<void> {
    await this.flushRun()
    const pending = this.inFlight
    this.inFlight = []
    await Promise.allSettled(pending)
    if (this.writeError) throw this.writeError
  }

  /**
   * Make everything below `upto` durable, fold it into the digest, record the resume point,
   * acknowledge. The sync, fold and record run behind the receive loop (one at a time, in
   * order), so the next blocks are written while the file system flushes these.
   */
  private async checkpoint(upto: number): Promise<void> {
    if (upto < this.checkpointRequested || upto > this.scannedUpto) {
      throw new ProtocolError('CHECKPOINT_OUT_OF_RANGE', `checkpoint at block ${upto} is outside ${this.checkpointRequested}..${this.scannedUpto}`)
    }
    this.checkpointRequested = upto
    const w = this.scanWaiter
    this.scanWaiter = undefined
    w?.()
    await this.settleWrites()
    this.checkpoints = this.checkpoints.then(async () => {
      if (this.checkpointError) return
      try {
        // A durable resume point costs an fdatasync and a state file replaced with two fsyncs:
        // record one every RECORD_EVERY_MS or RECORD_EVERY_BYTES (and at the end), fold and
        // acknowledge every checkpoint (the client reuses its buffers on the ack).
        const final = upto === this.blockCount
        const due = final || performance.now() - this.recordedAt >= RECORD_EVERY_MS || (upto - this.recordedUpto) * this.bs >= RECORD_EVERY_BYTES
        if (due) await this.replica.sync()
        await this.fold(upto)
        if (due) {
          await this.replica.recordProgress(upto)
          this.recordedUpto = upto
          this.recordedAt = performance.now()
        }
        await this.writer.send(FrameType.CHECKPOINT_ACK, encodeU64(upto))
      } catch (err) {
        this.checkpointError = err as Error
        // A client waiting for this ack (its buffers come back with it) sends nothing more.
        this.reader.abort?.(err as Error)
      }
    })
    if (this.checkpointError) throw this.checkpointError
  }

  /** Wait for every queued checkpoint; fail with the first error one of them met. */
  private async checkpointsDone(): Promise<void> {
    await this.checkpoints
    if (this.checkpointError) throw this.checkpointError
  }

  /** Fold blocks [digestedUpto, upto) into the digest, re-reading the ones written. */
  private async fold(upto: number): Promise<void> {
    // One buffer for every fold that cannot map: fresh memory costs a page fault per page.
    const runBuf = () => (this.foldBuf ??= Buffer.allocUnsafeSlow(Math.max(FOLD_RUN_BYTES, this.bs)))
    const perRun = Math.max(1, Math.floor(Math.max(FOLD_RUN_BYTES, this.bs) / this.bs))
    // The blocks written or zeroed below `upto`, in order; the rest are folded as scanned.
    const touched = [...this.written.keys(), ...this.zeroed].filter((t) => t < upto).sort((x, y) => x - y)
    let k = 0
    let b = this.digestedUpto
    while (b < upto) {
      const nextTouched = k < touched.length ? touched[k] : upto
      if (b < nextTouched) {
        this.foldScanned(b, nextTouched)
        b = nextTouched
        continue
      }
      let end = b
      let onlyZeroed = true
      while (end < upto && end - b < perRun && (this.written.has(end) || this.zeroed.has(end))) {
        if (this.written.has(end)) onlyZeroed = false
        end++
      }
      while (k < touched.length && touched[k] < end) k++
      const len = Math.min((end - b) * this.bs, this.hello.diskSize - b * this.bs)
      // A zeroed run the file system reports as one hole (a punched zero run) reads as zeros:
      // proved from the extent map, not by reading it (a buffered read of a hole fills the page
      // cache with zero pages). Anything else is read back; a run with written blocks always
      // is, without asking the extent map (a synchronous lseek per run cost more than it saved).
      const hole = onlyZeroed && holeMap(this.replica.fd, this.hello.diskSize, this.bs, b, end - b).allHoles
      const read = await hashRuns(this.replica, this.hasher, hole ? [] : [[0, end - b]], b * this.bs, len, this.bs, runBuf)
      for (let i = b; i < end; i++) {
        const sum = sumOf(read, i - b)
        const zero = sum === undefined
        const h = sum ?? this.hasher.zeroHash(this.blockLen(i))
        const expected = this.written.get(i)
        if (expected && !expected.equals(h)) throw new VerifyError(`block ${i} (offset ${i * this.bs}) reads back from the replica different from what was sent`)
        if (this.zeroed.has(i) && !zero) throw new VerifyError(`block ${i} (offset ${i * this.bs}) should be zero on the replica but is not`)
        this.digest.update(h)
        this.written.delete(i)
        this.zeroed.delete(i)
      }
      b = end
    }
    this.digestedUpto = upto
    while (this.scanned.length > 0 && this.scanned[0].first + this.scanned[0].count <= upto) this.scanned.shift()
  }

  /** Fold blocks [from, to), untouched by the client, with their checksums from the scan: one update per chunk. */
  private foldScanned(from: number, to: number): void {
    let b = from
    for (const c of this.scanned) {
      if (b >= to) break
      if (c.first + c.count <= b) continue
      if (c.first > b) break
      const stop = Math.min(to, c.first + c.count)
      this.digest.update(digestSlots(c.sums, b - c.first, stop - c.first, (i) => this.hasher.zeroHash(this.blockLen(c.first + i))))
      b = stop
    }
    if (b < to) throw new ProtocolError('BLOCK_NOT_SCANNED', `block ${b} was never scanned`)
  }

  private async onDone(payload: Buffer): Promise<void> {
    const done = decodeDone(payload)
    if (done.blockCount !== this.blockCount) throw new ProtocolError('DONE_MISMATCH', `DONE for ${done.blockCount} blocks, the sync has ${this.blockCount}`)
    await this.checkpoint(this.blockCount)
    await this.checkpointsDone()
    const digest = this.digest.digest()
    const ok = digest.equals(done.digest)
    if (ok) {
      const patch: Partial<ReplicaState> = {digest: digest.toString('hex')}
      await this.replica.markComplete(patch)
    } else {
      await this.replica.markProofFailed()
    }
    this.log(`${ok ? 'proved' : 'PROOF FAILED'}, ${this.bytesWritten} bytes written`, `fullsync ${this.replica.path}`)
    await this.writer.send(FrameType.VERIFY_RESULT, encodeVerifyResult({ok, digest}))
  }
}

function releaseAll(releases: Array<() => void>): () => void {
  return () => {
    for (const r of releases) r()
  }
}
