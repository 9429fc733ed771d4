// The receiver's side of a full sync (port 31031), the session: answer the HELLO, then run the
// replica's scan (receiver-scan.ts, statuses to the client) beside the receive loop, which checks
// each DATA and ZERO_RUN against what was scanned and hands it to the writes (receiver-writes.ts).
// At each CHECKPOINT the writes are settled, the proved blocks folded into the digest
// (receiver-proof.ts), the resume point recorded now and then, and the checkpoint acknowledged.
// At DONE the digests are compared; only a match marks the replica complete.
import {trace} from '../util/trace.js'
import fs from 'node:fs/promises'
import {ProtocolError} from '../errors.js'
import {blockHasher, type BlockHasher} from '../hash/block-hash.js'
import {FrameType, PROTOCOL_VERSION} from '../protocol/frame.js'
import type {FrameSource} from '../protocol/frame-reader.js'
import {helloOkCodec} from '../compress/decompress-source.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import {
  decodeData,
  decodeDone,
  type Done,
  decodeRange,
  decodeU64,
  encodeHelloOk,
  encodeU64,
  encodeVerifyResult,
  HelloFlag,
  ReplicaStateKind,
  type Hello,
} from '../protocol/messages.js'
import {journalPathFor} from '../delta/journal.js'
import {heldJournalPathFor} from '../group/held-journal.js'
import {ReplicaFile} from '../receiver/replica-file.js'
import type {ReplicaState} from '../receiver/replica-state.js'
import type {SessionLog} from '../receiver/session-log.js'
import {runCompareSession} from './receiver-compare.js'
import {ReplicaProof} from './receiver-proof.js'
import {ReplicaScan} from './receiver-scan.js'
import {openReplicaWrites} from './direct-writes.js'
import type {BlockWrites} from './receiver-writes.js'

/**
 * A durable resume point costs an fdatasync and a state file replaced with two fsyncs: one is
 * recorded every RECORD_EVERY_MS or RECORD_EVERY_BYTES of disk (and at the end), not at every
 * checkpoint. A CHECKPOINT_ACK therefore does not promise durability (doc/protocol.md).
 */
const RECORD_EVERY_MS = 1000
const RECORD_EVERY_BYTES = 256 << 20

/**
 * `trustBodies`: the client is this thread (receiver/session.ts, sameThreadClient): a DATA body is
 * not checksummed on arrival; the fold's read-back still checks it against its frame's checksum.
 */
export async function runFullsyncSession(
  hello: Hello,
  replicaPath: string,
  reader: FrameSource,
  writer: FrameWriter,
  log: SessionLog,
  opts: {trustBodies?: boolean} = {},
): Promise<void> {
  // Compare only (verify, dry run): a read-only session of its own that cannot write.
  if (hello.flags & HelloFlag.NO_WRITE) return runCompareSession(hello, replicaPath, reader, writer, log)
  const hasher = blockHasher(hello.hashAlgo, hello.replicaId)
  const replica = await ReplicaFile.open(replicaPath, hello)
  try {
    // Before anything is written: a replica of another source, or one that moved on, is refused.
    await replica.checkFence((text) => log(text, `fullsync ${replicaPath}`))
    // A full sync rewrites everything: a leftover delta journal has nothing left to say, nor has
    // a group push's held bundle (cut between its members' applies): of an older instant than
    // the disk this sync writes, settled later it would land on top of it.
    for (const [journal, what] of [
      [journalPathFor(replicaPath), 'a leftover delta journal'],
      [heldJournalPathFor(replicaPath), "a group push's held bundle"],
    ])
      if (
        await fs.rm(journal).then(
          () => true,
          () => false,
        )
      )
        log(`${replicaPath}: discarded ${what}`)
    const writes = await openReplicaWrites(replica, hello.blockSize, (text) => log(text, `fullsync ${replicaPath}`))
    try {
      await new FullsyncReceiver(hello, replica, writes, hasher, reader, writer, log, opts.trustBodies === true).run()
    } finally {
      await writes.close()
    }
  } finally {
    await replica.close()
  }
}

class FullsyncReceiver {
  private readonly bs: number
  private readonly blockCount: number
  private readonly scan: ReplicaScan
  private readonly proof: ReplicaProof
  private scanError: Error | undefined
  /** The `upto` of the last CHECKPOINT received; no block below it may be sent again. */
  private checkpointRequested = 0
  private checkpoints: Promise<void> = Promise.resolve()
  private checkpointError: Error | undefined
  private recordedUpto = 0
  private recordedAt = performance.now()
  private bytesWritten = 0

  constructor(
    private readonly hello: Hello,
    private readonly replica: ReplicaFile,
    private readonly writes: BlockWrites,
    private readonly hasher: BlockHasher,
    private readonly reader: FrameSource,
    private readonly writer: FrameWriter,
    private readonly log: SessionLog,
    private readonly trustBodies: boolean,
  ) {
    this.bs = hello.blockSize
    this.blockCount = Math.ceil(hello.diskSize / hello.blockSize)
    this.scan = new ReplicaScan(replica, hello.diskSize, this.bs, hasher, writer)
    this.proof = new ReplicaProof(writes.readBack ?? replica, hello.diskSize, this.bs, hasher)
  }

  private blockLen(b: number): number {
    return Math.min(this.bs, this.hello.diskSize - b * this.bs)
  }

  async run(): Promise<void> {
    const {replica, hello} = this
    const prior = replica.prior
    await this.writer.send(
      FrameType.HELLO_OK,
      encodeHelloOk({
        version: PROTOCOL_VERSION,
        state: prior.existed ? (prior.state?.complete ? ReplicaStateKind.COMPLETE : ReplicaStateKind.INCOMPLETE) : ReplicaStateKind.MISSING,
        replicaSize: prior.size,
        resumeBlock: prior.resumeBlock,
        replicaId: prior.state ? Buffer.from(prior.state.replicaId, 'hex') : Buffer.alloc(16),
        generation: prior.state?.generation ?? 0,
        lastSeq: prior.state?.lastSeq ?? 0,
        ...helloOkCodec(hello),
      }),
    )
    trace('receiver: HELLO_OK sent')
    await replica.beginFullsync(hello.diskSize, (hello.flags & HelloFlag.TRUNCATE_REPLICA) !== 0)
    trace('receiver: scan starts')
    const scan = this.scan
      .run()
      .then(() => trace('receiver: scan done'))
      .catch((err: Error) => {
        this.scanError = err
        // The client may be waiting for statuses and send nothing more: wake the receive loop.
        this.reader.abort?.(err)
      })
    try {
      await this.receive()
    } finally {
      this.scan.stop()
      await scan
      await this.checkpoints // never close the replica under a running sync or fold
    }
  }

  private async receive(): Promise<void> {
    for (;;) {
      if (this.scanError) throw this.scanError
      if (this.checkpointError) throw this.checkpointError
      const frame = this.reader.nextNow?.() ?? (await this.reader.next())
      if (!frame) throw new ProtocolError('UNEXPECTED_EOF', 'the client closed the connection before the sync was done')
      switch (frame.type) {
        case FrameType.DATA: {
          // Most blocks are queued without waiting: no promise for them (receiver-writes.ts).
          const queued = this.onData(frame.payload, frame.body, frame.release)
          if (queued) await queued
          break
        }
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
    if (b < this.checkpointRequested)
      throw new ProtocolError('BLOCK_BEHIND_CHECKPOINT', `${what} for block ${b}, already behind checkpoint ${this.checkpointRequested}`)
    if (b >= this.scan.sentUpto) throw new ProtocolError('BLOCK_NOT_SCANNED', `${what} for block ${b} before its status was sent`)
  }

  private onData(payload: Buffer, body?: Buffer, release?: () => void): Promise<void> | undefined {
    const {block, hash, data} = decodeData(payload, body)
    this.checkBlock(block, 'DATA')
    if (data.length !== this.blockLen(block))
      throw new ProtocolError('BLOCK_BAD_LENGTH', `DATA for block ${block} has ${data.length} bytes, expected ${this.blockLen(block)}`)
    if (!this.trustBodies && !this.hasher.hash(data).equals(hash))
      throw new ProtocolError('BLOCK_BAD_HASH', `DATA for block ${block} does not match its hash; refusing to write it`)
    this.proof.wrote(block, hash)
    this.bytesWritten += data.length
    return this.writes.writeBlock(block, data, release)
  }

  private async onZeroRun(payload: Buffer): Promise<void> {
    const {start, count} = decodeRange(payload, 'ZERO_RUN')
    if (count === 0) throw new ProtocolError('ZERO_RUN_EMPTY', 'ZERO_RUN of no blocks')
    this.checkBlock(start, 'ZERO_RUN')
    this.checkBlock(start + count - 1, 'ZERO_RUN')
    this.proof.zeroedRun(start, count)
    const offset = start * this.bs
    await this.writes.zeroRange(offset, Math.min(count * this.bs, this.hello.diskSize - offset))
  }

  /**
   * Settle the writes below `upto`, then (behind the receive loop, one at a time, in order, so
   * the next blocks are written while the file system flushes these) fold them into the digest,
   * record the resume point when one is due, and acknowledge. The ack waits for no later frame
   * from the client: the client reuses the buffers it lent on it (doc/protocol.md, CHECKPOINT_ACK).
   */
  private async checkpoint(upto: number): Promise<void> {
    if (upto < this.checkpointRequested || upto > this.scan.sentUpto) {
      throw new ProtocolError('CHECKPOINT_OUT_OF_RANGE', `checkpoint at block ${upto} is outside ${this.checkpointRequested}..${this.scan.sentUpto}`)
    }
    this.checkpointRequested = upto
    this.scan.checkpointed(upto)
    // The writes below `upto`, not the ones after: the receive loop goes on writing the next
    // blocks while these reach the device (a settle here drained the write pipeline each time).
    const written = this.writes.barrier()
    written.catch(() => undefined) // observed below, in order
    this.checkpoints = this.checkpoints.then(async () => {
      if (this.checkpointError) return
      try {
        await written
        const final = upto === this.blockCount
        const due = final || performance.now() - this.recordedAt >= RECORD_EVERY_MS || (upto - this.recordedUpto) * this.bs >= RECORD_EVERY_BYTES
        if (due) await this.replica.sync()
        await this.proof.fold(upto, this.scan.scanned)
        this.scan.forgetBelow(upto)
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

  private async onDone(payload: Buffer): Promise<void> {
    trace('receiver: DONE')
    const done = decodeDone(payload)
    if (done.blockCount !== this.blockCount) throw new ProtocolError('DONE_MISMATCH', `DONE for ${done.blockCount} blocks, the sync has ${this.blockCount}`)
    // The last CHECKPOINT_ACK and VERIFY_RESULT leave together (frame-writer.ts, hold): sent
    // apart, an sshd on the way held the verdict for the client's delayed ACK (a 1% seed sync
    // over a 1 Gbit/s link: VERIFY_RESULT to the client's verdict 16-45 ms).
    const release = this.writer.hold()
    try {
      await this.finish(done)
    } finally {
      release()
    }
  }

  private async finish(done: Done): Promise<void> {
    await this.checkpoint(this.blockCount)
    await this.checkpointsDone()
    trace('receiver: last checkpoint settled')
    const digest = this.proof.digest()
    const ok = digest.equals(done.digest)
    if (ok) {
      const patch: Partial<ReplicaState> = {digest: digest.toString('hex')}
      await this.replica.markComplete(patch)
    } else {
      await this.replica.markProofFailed()
    }
    this.log(`${ok ? 'proved' : 'PROOF FAILED'}, ${this.bytesWritten} bytes written (${this.writes.mode})`, `fullsync ${this.replica.path}`)
    trace('receiver: VERIFY_RESULT')
    await this.writer.send(FrameType.VERIFY_RESULT, encodeVerifyResult({ok, digest}))
  }
}
