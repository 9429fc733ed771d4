// The client's view of what the receiver sends during a full sync, read in the background:
// block statuses (queued in order, bounded so a fast scanner cannot fill memory), checkpoint
// acknowledgements, the verify result, and any ERROR, which fails every waiter.
import type {RecordWriter} from '../change-record/writer.js'
import {ProtocolError, RemoteError, TransportError} from '../errors.js'
import {HASH_LENGTH} from '../hash/block-hash.js'
import {FrameType} from '../protocol/frame.js'
import type {FrameReader} from '../protocol/frame-reader.js'
import {ERROR_WAIT_MS, STATUS_QUEUE_BLOCKS} from '../protocol/flow.js'
import {BlockKind, decodeBlockStatus, decodeError, decodeU64, decodeVerifyResult, type BlockStatus, type VerifyResult} from '../protocol/messages.js'

export function remoteErrorOf(payload: Buffer): RemoteError {
  const e = decodeError(payload)
  return new RemoteError(e, 'replica host') // its exit code is ours to decide, by the code
}

/**
 * The receiver's refusal of the hello. A replica that moved on or is another source's is
 * recorded in the .psf first (through its owner), so that `status` shows it until a proved sync.
 */
export async function helloRefused(payload: Buffer, owner: RecordWriter): Promise<RemoteError> {
  const e = remoteErrorOf(payload)
  if (e.code === 'REPLICA_DIVERGED' || e.code === 'REPLICA_FOREIGN' || e.code === 'REPLICA_PROMOTED') await owner.replicaRefused(e.code)
  return e
}

export class ReceiverReplies {
  private batches: BlockStatus[] = []
  private queuedBlocks = 0
  private current: {status: BlockStatus; index: number; hashPos: number} | undefined
  private nextBlock = 0
  private failure: Error | undefined
  private verify: VerifyResult | undefined
  private waiter: (() => void) | undefined
  private roomWaiter: (() => void) | undefined
  private onFailed: ((err: Error) => void) | undefined
  durableUpto = 0
  readonly done: Promise<void>

  constructor(
    private readonly reader: FrameReader,
    private readonly onDurable: (upto: number) => void,
  ) {
    this.done = this.pump().catch((err: Error) => this.fail(err))
    // The carrier gave the receiver up (--timeout): the pump may be waiting for room, not reading.
    const aborted = reader.aborted
    if (aborted.aborted) this.fail(aborted.reason as Error)
    else aborted.addEventListener('abort', () => this.fail(aborted.reason as Error), {once: true})
  }

  /**
   * `cb` runs once, with the error, when the replies end in failure (at once if they did): the
   * waits of the sync that only the receiver's acknowledgements end are then failed with it.
   */
  whenFailed(cb: (err: Error) => void): void {
    if (this.failure) cb(this.failure)
    else this.onFailed = cb
  }

  private fail(err: Error): void {
    if (this.failure) return
    this.failure = err
    this.wake()
    const rw = this.roomWaiter
    this.roomWaiter = undefined
    rw?.()
    this.onFailed?.(err)
  }

  private wake(): void {
    const w = this.waiter
    this.waiter = undefined
    w?.()
  }

  private async pump(): Promise<void> {
    for (;;) {
      // Bounded, yet never below the receiver's lead: a CHECKPOINT_ACK behind queued statuses is
      // always read (the client waits for those acks to reuse the buffers it lent; protocol/flow.ts).
      while (this.queuedBlocks >= STATUS_QUEUE_BLOCKS && !this.failure) await new Promise<void>((r) => (this.roomWaiter = r))
      const frame = await this.reader.next()
      if (!frame) {
        if (!this.verify) throw new TransportError('RECEIVER_CLOSED', 'the replica host closed the connection before the sync was proved')
        return
      }
      switch (frame.type) {
        case FrameType.BLOCK_STATUS: {
          const st = decodeBlockStatus(frame.payload)
          this.batches.push(st)
          this.queuedBlocks += st.kinds.length
          break
        }
        case FrameType.CHECKPOINT_ACK:
          this.durableUpto = decodeU64(frame.payload, 'CHECKPOINT_ACK')
          this.onDurable(this.durableUpto)
          break
        case FrameType.VERIFY_RESULT:
          this.verify = decodeVerifyResult(frame.payload)
          break
        case FrameType.ERROR:
          throw remoteErrorOf(frame.payload)
        default:
          throw new ProtocolError('FRAME_UNEXPECTED', `unexpected frame type ${frame.type} from the receiver`)
      }
      this.wake()
    }
  }

  private async waitUntil(ready: () => boolean): Promise<void> {
    while (!ready()) {
      if (this.failure) throw this.failure
      await new Promise<void>((r) => (this.waiter = r))
    }
  }

  /**
   * The statuses of the next `count` blocks, in order, into `kinds` (one per block) and
   * `hashes` (HASH_LENGTH bytes at i * HASH_LENGTH for each HASH block; other slots are left
   * as they were). One await per batch, not per block: the client's compare runs per chunk.
   */
  async takeStatuses(count: number, kinds: Uint8Array, hashes: Buffer): Promise<void> {
    let i = 0
    while (i < count) {
      const c = this.current ?? (await this.nextBatch())
      const {kinds: theirKinds, hashes: theirHashes} = c.status
      const n = Math.min(count - i, theirKinds.length - c.index)
      kinds.set(theirKinds.subarray(c.index, c.index + n), i)
      for (let k = 0; k < n; k++) {
        if (theirKinds[c.index + k] !== BlockKind.HASH) continue
        theirHashes.copy(hashes, (i + k) * HASH_LENGTH, c.hashPos, c.hashPos + HASH_LENGTH)
        c.hashPos += HASH_LENGTH
      }
      c.index += n
      i += n
      this.nextBlock += n
      if (c.index >= theirKinds.length) this.current = undefined
    }
  }

  private async nextBatch(): Promise<{status: BlockStatus; index: number; hashPos: number}> {
    await this.waitUntil(() => this.batches.length > 0)
    const status = this.batches.shift() as BlockStatus
    this.queuedBlocks -= status.kinds.length
    const rw = this.roomWaiter
    this.roomWaiter = undefined
    rw?.()
    if (status.startBlock !== this.nextBlock)
      throw new ProtocolError('STATUS_OUT_OF_ORDER', `receiver sent status for block ${status.startBlock}, expected ${this.nextBlock}`)
    this.current = {status, index: 0, hashPos: 0}
    return this.current
  }

  async verifyResult(): Promise<VerifyResult> {
    await this.waitUntil(() => this.verify !== undefined)
    return this.verify as VerifyResult
  }

  /** After a send failed: the receiver's own error, if it sent one, explains it better. */
  async explain(sendError: Error): Promise<Error> {
    this.batches = []
    this.queuedBlocks = 0
    this.roomWaiter?.()
    await Promise.race([this.done, new Promise((r) => setTimeout(r, ERROR_WAIT_MS))])
    return this.failure instanceof RemoteError ? this.failure : sendError
  }
}
