// Tests of src/core/fullsync/client-replies.ts, the client's reader of what the receiver sends
// during a full sync, through the calls the client makes (fullsync/client.ts): takeStatuses per
// chunk, the durable callback on each CHECKPOINT_ACK, verifyResult, explain. Statuses come in
// order across any batch and chunk boundaries, a batch out of order is refused, the status queue
// is bounded yet never stops an ack the client waits for (protocol/flow.ts), and an ERROR from
// the receiver fails the waiting call with the receiver's code and exit code.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fc from 'fast-check'

import {RemoteError} from '../../../src/core/errors.js'
import {HASH_LENGTH} from '../../../src/core/hash/block-hash.js'
import {duplexPair} from '../../../src/core/transport/duplex-pair.js'
import {FrameType} from '../../../src/core/protocol/frame.js'
import {FrameReader} from '../../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../../src/core/protocol/frame-writer.js'
import {STATUS_LEAD_BLOCKS, STATUS_QUEUE_BLOCKS} from '../../../src/core/protocol/flow.js'
import {BlockKind, encodeBlockStatus, encodeError, encodeU64, encodeVerifyResult, MAX_STATUS_BATCH} from '../../../src/core/protocol/messages.js'
import {ReceiverReplies} from '../../../src/core/fullsync/client-replies.js'

interface Status {
  kind: number
  hash?: Buffer
}

/** Send `statuses` as BLOCK_STATUS batches of the given sizes, starting at block `start`. */
async function sendBatches(writer: FrameWriter, statuses: Status[], sizes: number[], start = 0): Promise<void> {
  let at = 0
  for (const size of sizes) {
    const part = statuses.slice(at, at + size)
    if (part.length === 0) break
    const kinds = Uint8Array.from(part.map((s) => s.kind))
    const hashes = Buffer.concat(part.filter((s) => s.kind === BlockKind.HASH).map((s) => s.hash as Buffer))
    await writer.send(FrameType.BLOCK_STATUS, encodeBlockStatus({startBlock: start + at, kinds, hashes}))
    at += part.length
  }
}

/** `blocks` ZERO statuses from block `start`, in full batches. */
async function sendZeroStatuses(writer: FrameWriter, start: number, blocks: number): Promise<void> {
  for (let b = start; b < start + blocks; b += MAX_STATUS_BATCH) {
    const n = Math.min(MAX_STATUS_BATCH, start + blocks - b)
    await writer.send(FrameType.BLOCK_STATUS, encodeBlockStatus({startBlock: b, kinds: new Uint8Array(n), hashes: Buffer.alloc(0)}))
  }
}

function replies(): {writer: FrameWriter; replies: ReceiverReplies; durable: number[]; close: () => void} {
  const [a, b] = duplexPair()
  const durable: number[] = []
  const r = new ReceiverReplies(new FrameReader(b), (upto) => durable.push(upto))
  r.done.catch(() => {})
  return {writer: new FrameWriter(a), replies: r, durable, close: () => (a.destroy(), b.destroy())}
}

/** Wait until `cond` holds, up to `ms` (the pump reads in the background). */
async function eventually(cond: () => boolean, ms = 5000): Promise<boolean> {
  const until = Date.now() + ms
  while (!cond() && Date.now() < until) await new Promise((r) => setTimeout(r, 5))
  return cond()
}

const statusArb = fc
  .constantFrom(BlockKind.ZERO, BlockKind.HASH, BlockKind.UNKNOWN)
  .map((kind): Status => (kind === BlockKind.HASH ? {kind, hash: crypto.randomBytes(HASH_LENGTH)} : {kind}))

describe('ReceiverReplies', () => {
  it('takeStatuses gives each block its status in order, across batch boundaries, for any chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(statusArb, {minLength: 1, maxLength: 200}),
        fc.array(fc.integer({min: 1, max: 40}), {minLength: 1, maxLength: 200}),
        fc.array(fc.integer({min: 1, max: 30}), {minLength: 1, maxLength: 200}),
        async (statuses, batchSizes, takes) => {
          const sizes = [...batchSizes]
          while (sizes.reduce((x, y) => x + y, 0) < statuses.length) sizes.push(40)
          const {writer, replies: r, close} = replies()
          try {
            await sendBatches(writer, statuses, sizes)
            let b = 0
            let t = 0
            while (b < statuses.length) {
              const n = Math.min(takes[t++ % takes.length], statuses.length - b)
              const kinds = new Uint8Array(n).fill(0xdd)
              const hashes = Buffer.alloc(n * HASH_LENGTH, 0xee)
              await r.takeStatuses(n, kinds, hashes)
              for (let i = 0; i < n; i++) {
                const s = statuses[b + i]
                assert.equal(kinds[i], s.kind, `block ${b + i}`)
                const slot = hashes.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH)
                if (s.kind === BlockKind.HASH) assert.deepEqual(slot, s.hash, `hash of block ${b + i}`)
                else
                  assert.ok(
                    slot.every((x) => x === 0xee),
                    `block ${b + i} has no hash: its slot is left alone`,
                  )
              }
              b += n
            }
          } finally {
            close()
          }
        },
      ),
      {numRuns: 60},
    )
  })

  it('a batch that does not start where the last ended is refused', async () => {
    const {writer, replies: r, close} = replies()
    try {
      await sendBatches(writer, [{kind: BlockKind.ZERO}, {kind: BlockKind.ZERO}], [2], 0)
      await sendBatches(writer, [{kind: BlockKind.ZERO}], [1], 5)
      await assert.rejects(r.takeStatuses(3, new Uint8Array(3), Buffer.alloc(3 * HASH_LENGTH)), /STATUS_OUT_OF_ORDER|expected 2/)
    } finally {
      close()
    }
  })

  it('reads a CHECKPOINT_ACK that follows a full lead of statuses the client has not taken', async () => {
    // The receiver may have STATUS_LEAD_BLOCKS statuses (cut at that line) out past the last
    // checkpoint; the client waits for the ack behind them before it takes more.
    const {writer, replies: r, durable, close} = replies()
    try {
      await sendZeroStatuses(writer, 0, STATUS_LEAD_BLOCKS + MAX_STATUS_BATCH)
      await writer.send(FrameType.CHECKPOINT_ACK, encodeU64(1024))
      assert.ok(await eventually(() => durable.length > 0), 'the ack behind the queued statuses was never read')
      assert.deepEqual(durable, [1024])
      assert.equal(r.durableUpto, 1024)
    } finally {
      close()
    }
  })

  it('stops reading at STATUS_QUEUE_BLOCKS queued statuses and reads on once the client takes some', async () => {
    const {writer, replies: r, durable, close} = replies()
    try {
      const sending = (async () => {
        await sendZeroStatuses(writer, 0, STATUS_QUEUE_BLOCKS + MAX_STATUS_BATCH)
        await writer.send(FrameType.CHECKPOINT_ACK, encodeU64(7))
      })()
      sending.catch(() => {})
      await new Promise((res) => setTimeout(res, 300))
      assert.deepEqual(durable, [], 'the queue is bounded: nothing past it is read while it is full')
      // Room for the last batch, then for the ack behind it.
      const n = 2 * MAX_STATUS_BATCH
      await r.takeStatuses(n, new Uint8Array(n), Buffer.alloc(n * HASH_LENGTH))
      assert.ok(await eventually(() => durable.length > 0), 'taking statuses made room, and the ack behind them was read')
      assert.deepEqual(durable, [7])
    } finally {
      close()
    }
  })

  it('an ERROR from the receiver fails the waiting call with its code and exit code, and explains a failed send', async () => {
    const {writer, replies: r, close} = replies()
    try {
      await sendZeroStatuses(writer, 0, 4)
      await writer.send(FrameType.ERROR, encodeError({exitCode: 9, code: 'REPLICA_FULL', message: 'no room', hint: 'free space'}))
      const err = await r.takeStatuses(8, new Uint8Array(8), Buffer.alloc(8 * HASH_LENGTH)).then(
        () => assert.fail('statuses past the ERROR'),
        (e: unknown) => e,
      )
      assert.ok(err instanceof RemoteError)
      assert.equal(err.code, 'REPLICA_FULL')
      assert.equal(err.exitCode, 9)
      assert.match(err.message, /^replica host: no room/)
      assert.equal(await r.explain(new Error('EPIPE')), err, "a send that failed is explained by the receiver's ERROR")
    } finally {
      close()
    }
  })

  it("verifyResult gives the receiver's verdict; a receiver that closes without one is an error", async () => {
    const ok = replies()
    try {
      const digest = crypto.randomBytes(HASH_LENGTH)
      await ok.writer.send(FrameType.VERIFY_RESULT, encodeVerifyResult({ok: true, digest}))
      ok.writer.end()
      const v = await ok.replies.verifyResult()
      assert.equal(v.ok, true)
      assert.deepEqual(v.digest, digest)
    } finally {
      ok.close()
    }
    const cut = replies()
    try {
      cut.writer.end()
      await assert.rejects(cut.replies.verifyResult(), /RECEIVER_CLOSED|closed the connection/)
    } finally {
      cut.close()
    }
  })
})
