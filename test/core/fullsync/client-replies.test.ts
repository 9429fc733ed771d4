// Tests of src/core/fullsync/client-replies.ts: the client reads the replica's block statuses
// per block (nextStatus) or per chunk (takeStatuses). Both must give the same statuses, in
// order, across batch boundaries, with the hashes of HASH blocks only, and refuse a batch
// that is out of order.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fc from 'fast-check'

import {HASH_LENGTH} from '../../../src/core/hash/block-hash.js'
import {duplexPair} from '../../../src/core/transport/duplex-pair.js'
import {FrameType} from '../../../src/core/protocol/frame.js'
import {FrameReader} from '../../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../../src/core/protocol/frame-writer.js'
import {BlockKind, encodeBlockStatus} from '../../../src/core/protocol/messages.js'
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

function replies(): {writer: FrameWriter; replies: ReceiverReplies; close: () => void} {
  const [a, b] = duplexPair()
  const r = new ReceiverReplies(new FrameReader(b), () => {})
  r.done.catch(() => {})
  return {writer: new FrameWriter(a), replies: r, close: () => (a.destroy(), b.destroy())}
}

const statusArb = fc.constantFrom(BlockKind.ZERO, BlockKind.HASH, BlockKind.UNKNOWN).map((kind): Status => (kind === BlockKind.HASH ? {kind, hash: crypto.randomBytes(HASH_LENGTH)} : {kind}))

describe('ReceiverReplies', () => {
  it('takeStatuses gives what nextStatus gives, across batch boundaries, for any chunking', async () => {
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
              if (t % 3 === 0) {
                // Mixed with the per-block call: the position is shared.
                for (let i = 0; i < n; i++) assert.deepEqual(await r.nextStatus(), {kind: statuses[b + i].kind, hash: statuses[b + i].hash})
              } else {
                const kinds = new Uint8Array(n)
                const hashes = Buffer.alloc(n * HASH_LENGTH, 0xee)
                await r.takeStatuses(n, kinds, hashes)
                for (let i = 0; i < n; i++) {
                  const s = statuses[b + i]
                  assert.equal(kinds[i], s.kind, `block ${b + i}`)
                  const slot = hashes.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH)
                  if (s.kind === BlockKind.HASH) assert.deepEqual(slot, s.hash, `hash of block ${b + i}`)
                  else assert.ok(slot.every((x) => x === 0xee), `block ${b + i} has no hash: its slot is left alone`)
                }
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
})
