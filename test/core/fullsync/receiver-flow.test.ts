// The receiver's half of the full sync's flow-control rules (src/core/protocol/flow.ts,
// doc/protocol.md "Flow control"), driven by a hand-written client over an in-memory pair:
// statuses for exactly every block below C + STATUS_LEAD_BLOCKS go out without the client sending
// anything, none beyond until a CHECKPOINT moves C (wherever C lies, not only on batch lines), and
// every CHECKPOINT is acknowledged without any later frame from the client.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import {tempDir} from '../../helpers/disks.js'
import {HashAlgo} from '../../../src/core/hash/block-hash.js'
import {duplexPair} from '../../../src/core/transport/duplex-pair.js'
import {FrameType, PROTOCOL_VERSION} from '../../../src/core/protocol/frame.js'
import {FrameReader} from '../../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../../src/core/protocol/frame-writer.js'
import {STATUS_LEAD_BLOCKS} from '../../../src/core/protocol/flow.js'
import {decodeBlockStatus, decodeU64, encodeHello, encodeU64, MAX_STATUS_BATCH, SyncMode} from '../../../src/core/protocol/messages.js'
import {handleConnection} from '../../../src/core/receiver/session.js'

const BS = 4096

describe('full-sync receiver: flow control', () => {
  let root: string
  beforeEach(async () => {
    root = await tempDir()
  })
  afterEach(async () => {
    await fs.rm(root, {recursive: true, force: true})
  })

  it('sends statuses up to exactly the lead past the last checkpoint, waits there, and acks each checkpoint unprompted', async function () {
    this.timeout(60_000)
    const blocks = STATUS_LEAD_BLOCKS + 3 * MAX_STATUS_BATCH + 17 // a sparse replica past the lead
    const [client, server] = duplexPair()
    const served = handleConnection(server, {root})
    const reader = new FrameReader(client)
    const writer = new FrameWriter(client)
    let statusesUpto = 0
    const acks: number[] = []
    /** Read frames until `cond` holds, or until nothing comes for `quietMs` (then false). */
    const readUntil = async (cond: () => boolean, quietMs = 1500): Promise<boolean> => {
      while (!cond()) {
        let timer: NodeJS.Timeout | undefined
        const quiet = new Promise<null>((r) => (timer = setTimeout(() => r(null), quietMs)))
        const f = await Promise.race([reader.next(), quiet])
        clearTimeout(timer)
        if (!f) return false
        if (f.type === FrameType.BLOCK_STATUS) {
          const st = decodeBlockStatus(f.payload)
          assert.equal(st.startBlock, statusesUpto, 'statuses in order, without gaps')
          statusesUpto += st.kinds.length
        } else if (f.type === FrameType.CHECKPOINT_ACK) acks.push(decodeU64(f.payload, 'CHECKPOINT_ACK'))
        else assert.fail(`unexpected frame type ${f.type}`)
      }
      return true
    }
    try {
      await writer.send(FrameType.HELLO, encodeHello({version: PROTOCOL_VERSION, mode: SyncMode.FULLSYNC, hashAlgo: HashAlgo.BLAKE3, blockSize: BS, diskSize: BS * blocks, replicaId: Buffer.alloc(16, 7), flags: 0, path: 'lead.img'}))
      assert.equal((await reader.next())?.type, FrameType.HELLO_OK)
      // Nothing sent yet (C = 0): the whole lead comes, and not one status more.
      assert.ok(await readUntil(() => statusesUpto >= STATUS_LEAD_BLOCKS), `only ${statusesUpto} statuses came without a checkpoint`)
      assert.equal(await readUntil(() => false), false)
      assert.equal(statusesUpto, STATUS_LEAD_BLOCKS, 'the receiver ran past the lead without a checkpoint')
      // A checkpoint that is not on a batch line: the lead moves by exactly as much, and it is acked.
      const c = 1000
      await writer.send(FrameType.CHECKPOINT, encodeU64(c))
      assert.ok(await readUntil(() => statusesUpto >= c + STATUS_LEAD_BLOCKS && acks.length > 0), `after CHECKPOINT(${c}): ${statusesUpto} statuses, acks ${acks.join(',')}`)
      assert.equal(await readUntil(() => false), false)
      assert.equal(statusesUpto, c + STATUS_LEAD_BLOCKS, 'statuses stop at exactly C + STATUS_LEAD_BLOCKS')
      assert.deepEqual(acks, [c])
      // The last checkpoint frees the rest of the disk.
      await writer.send(FrameType.CHECKPOINT, encodeU64(statusesUpto))
      assert.ok(await readUntil(() => statusesUpto === blocks && acks.length === 2), `the rest of the disk: ${statusesUpto} of ${blocks}`)
      assert.deepEqual(acks, [c, STATUS_LEAD_BLOCKS + c])
    } finally {
      writer.end()
      await served
      client.destroy()
    }
  })
})
