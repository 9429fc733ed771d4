// The receiver's scan of its replica during a full sync: read the replica in order (holes are
// not read), checksum each block, and stream a BLOCK_STATUS per batch to the client, no further
// ahead of the client's last CHECKPOINT than STATUS_LEAD_BLOCKS (protocol/flow.ts). The
// checksums stay here until the proof (receiver-proof.ts) has folded them into the digest.
import {HASH_LENGTH, type BlockHasher} from '../hash/block-hash.js'
import {readChunks} from '../disk/chunk-reader.js'
import {canMapHashing, type BlockSums, type ReadableDisk} from '../disk/read-hash.js'
import {STATUS_LEAD_BLOCKS} from '../protocol/flow.js'
import {FrameType} from '../protocol/frame.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import {BlockKind, encodeBlockStatus, MAX_STATUS_BATCH, type BlockStatus} from '../protocol/messages.js'

/**
 * The replica is scanned in chunks this large when it can be mapped (nothing is buffered),
 * else in chunks of SCAN_READ_CHUNK (each is a buffer, and the read-ahead holds a few). A
 * mapped chunk's pages count as this process's resident memory until it is unmapped, and the
 * read-ahead keeps three in flight: at 32 MiB a 1 GiB seed sync peaked at 114-129 MiB, at 8 MiB
 * at 71-82 MiB (issue 21: under 160 MiB on any disk). Larger chunks were a little faster
 * (0.33 -> 0.31 s engine time for 32 MiB against 4 MiB); 8 MiB against 32 MiB, interleaved, 15
 * runs each at load ~5: median 0.646 -> 0.677 s (+4.7%).
 */
const SCAN_MAPPED_CHUNK = 8 << 20
const SCAN_READ_CHUNK = 4 << 20

/** A scanned chunk: its blocks' checksums and zero flags. */
export interface ScannedChunk {
  first: number
  count: number
  sums: BlockSums
}

export class ReplicaScan {
  /** Chunks whose statuses were (or are being) sent and that the proof has not folded yet, in order. */
  readonly scanned: ScannedChunk[] = []
  /** Statuses have been handed to the writer for every block below this. */
  sentUpto = 0
  /** The `upto` of the last CHECKPOINT received: statuses may go up to this + STATUS_LEAD_BLOCKS. */
  private checkpointUpto = 0
  private waiter: (() => void) | undefined
  private stopped = false

  constructor(
    private readonly replica: ReadableDisk,
    private readonly diskSize: number,
    private readonly blockSize: number,
    private readonly hasher: BlockHasher,
    private readonly writer: FrameWriter,
    /** No replica file (a compare-only session of a missing replica): every block reads as zeros, nothing is read. */
    private readonly absent = false,
  ) {}

  /** Stream the replica's per-block status to the client, in order, to the end or until stop(). */
  async run(): Promise<void> {
    // Only the checksums are needed: through a mapping where the addon can (no copy out of the
    // page cache), else read and checksummed in the thread pool, else here.
    const chunkBytes = canMapHashing(this.replica, this.hasher) ? SCAN_MAPPED_CHUNK : SCAN_READ_CHUNK
    const chunks = this.absent
      ? zeroChunks(this.diskSize, this.blockSize, chunkBytes)
      : readChunks(this.replica, this.diskSize, this.blockSize, chunkBytes, this.hasher, () => true)
    for await (const chunk of chunks) {
      const sums = chunk.sums as BlockSums
      this.scanned.push({first: chunk.first, count: chunk.count, sums})
      let at = 0
      while (at < chunk.count) {
        const first = chunk.first + at
        // The lead rule (protocol/flow.ts), exactly: every status below C + STATUS_LEAD_BLOCKS
        // goes without waiting (a batch is cut at that line), none beyond it until C moves.
        while (first >= this.checkpointUpto + STATUS_LEAD_BLOCKS && !this.stopped) await new Promise<void>((r) => (this.waiter = r))
        // The session ended (an error, or the client is done): nobody reads statuses any more,
        // and a send could wait forever for a client that is itself blocked sending to us,
        // holding back the ERROR frame that tells it why.
        if (this.stopped) return
        const count = Math.min(MAX_STATUS_BATCH, chunk.count - at, this.checkpointUpto + STATUS_LEAD_BLOCKS - first)
        // Counted as sent before the send resolves: the client may answer (DATA, CHECKPOINT)
        // as soon as the frame is on its way.
        this.sentUpto = first + count
        await this.writer.send(FrameType.BLOCK_STATUS, encodeBlockStatus(statusOf(sums, at, count, first)))
        at += count
      }
    }
  }

  /** A CHECKPOINT at `upto` was received: the lead moves on. */
  checkpointed(upto: number): void {
    this.checkpointUpto = upto
    this.wake()
  }

  /** The session is over: send nothing more. */
  stop(): void {
    this.stopped = true
    this.wake()
  }

  /** Drop the chunks wholly below `upto` (folded into the digest). */
  forgetBelow(upto: number): void {
    while (this.scanned.length > 0 && this.scanned[0].first + this.scanned[0].count <= upto) this.scanned.shift()
  }

  private wake(): void {
    const w = this.waiter
    this.waiter = undefined
    w?.()
  }
}

/** The chunks of a replica that does not exist: every block a zero block. */
function* zeroChunks(diskSize: number, bs: number, chunkBytes: number): Generator<{first: number; count: number; sums: BlockSums}> {
  const blockCount = Math.ceil(diskSize / bs)
  const per = Math.max(1, Math.floor(chunkBytes / bs))
  for (let first = 0; first < blockCount; first += per) {
    const count = Math.min(per, blockCount - first)
    yield {first, count, sums: {sums: Buffer.alloc(count * HASH_LENGTH), zero: new Uint8Array(count).fill(1)}}
  }
}

/** The status of blocks [at, at + count) of a chunk, as block `first` onwards. */
export function statusOf(sums: BlockSums, at: number, count: number, first: number): BlockStatus {
  const kinds = new Uint8Array(count)
  let hashed = 0
  for (let i = 0; i < count; i++) {
    const zero = sums.zero[at + i] === 1
    kinds[i] = zero ? BlockKind.ZERO : BlockKind.HASH
    if (!zero) hashed++
  }
  // The checksums of the HASH blocks, back to back: the chunk's slots as they are when no block
  // is zero, else gathered.
  if (hashed === count) return {startBlock: first, kinds, hashes: sums.sums.subarray(at * HASH_LENGTH, (at + count) * HASH_LENGTH)}
  const hashes = Buffer.allocUnsafe(hashed * HASH_LENGTH)
  for (let i = 0, pos = 0; i < count && pos < hashes.length; i++) {
    if (kinds[i] !== BlockKind.HASH) continue
    sums.sums.copy(hashes, pos, (at + i) * HASH_LENGTH, (at + i + 1) * HASH_LENGTH)
    pos += HASH_LENGTH
  }
  return {startBlock: first, kinds, hashes}
}
