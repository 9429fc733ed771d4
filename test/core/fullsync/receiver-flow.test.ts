// The receiver's half of the full sync's flow-control rules (src/core/protocol/flow.ts,
// doc/protocol.md "Flow control"), driven by a hand-written client over an in-memory pair:
// statuses for exactly every block below C + STATUS_LEAD_BLOCKS go out without the client sending
// anything, none beyond until a CHECKPOINT moves C (wherever C lies, not only on batch lines), and
// every CHECKPOINT is acknowledged without any later frame from the client.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {tempDir} from '../../helpers/disks.js'
import {blockHasher, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {duplexPair} from '../../../src/core/transport/duplex-pair.js'
import {FrameType, PROTOCOL_VERSION} from '../../../src/core/protocol/frame.js'
import {FrameReader} from '../../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../../src/core/protocol/frame-writer.js'
import {STATUS_LEAD_BLOCKS} from '../../../src/core/protocol/flow.js'
import {
  decodeBlockStatus,
  decodeError,
  decodeU64,
  encodeDataFields,
  encodeHello,
  encodeU64,
  MAX_STATUS_BATCH,
  SyncMode,
} from '../../../src/core/protocol/messages.js'
import {handleConnection} from '../../../src/core/receiver/session.js'

const BS = 4096

function hello(p: string, blocks: number): Buffer {
  return encodeHello({
    version: PROTOCOL_VERSION,
    mode: SyncMode.FULLSYNC,
    hashAlgo: HashAlgo.BLAKE3,
    blockSize: BS,
    diskSize: BS * blocks,
    replicaId: Buffer.alloc(16, 7),
    flags: 0,
    lastCommit: Buffer.alloc(16),
    nextCommit: Buffer.alloc(16, 1),
    path: p,
  })
}

/** Read the receiver's frames until it hangs up (or 10 s pass); its ERROR code, if any. */
async function errorCode(reader: FrameReader, writer: FrameWriter): Promise<string | undefined> {
  let code: string | undefined
  const timer = setTimeout(() => writer.end(), 10_000)
  for (let f = await reader.next(); f; f = await reader.next()) if (f.type === FrameType.ERROR) code = decodeError(f.payload).code
  clearTimeout(timer)
  return code
}

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
    // A read still waiting when the quiet time ran out is kept for the next call: a frame reader
    // serves one read at a time.
    let pending: ReturnType<typeof reader.next> | undefined
    const readUntil = async (cond: () => boolean, quietMs = 1500): Promise<boolean> => {
      while (!cond()) {
        let timer: NodeJS.Timeout | undefined
        const quiet = new Promise<null>((r) => (timer = setTimeout(() => r(null), quietMs)))
        pending ??= reader.next()
        const f = await Promise.race([pending, quiet])
        clearTimeout(timer)
        if (!f) return false
        pending = undefined
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
      await writer.send(FrameType.HELLO, hello('lead.img', blocks))
      assert.equal((await reader.next())?.type, FrameType.HELLO_OK)
      // Nothing sent yet (C = 0): the whole lead comes, and not one status more.
      assert.ok(await readUntil(() => statusesUpto >= STATUS_LEAD_BLOCKS), `only ${statusesUpto} statuses came without a checkpoint`)
      assert.equal(await readUntil(() => false), false)
      assert.equal(statusesUpto, STATUS_LEAD_BLOCKS, 'the receiver ran past the lead without a checkpoint')
      // A checkpoint that is not on a batch line: the lead moves by exactly as much, and it is acked.
      const c = 1000
      await writer.send(FrameType.CHECKPOINT, encodeU64(c))
      assert.ok(
        await readUntil(() => statusesUpto >= c + STATUS_LEAD_BLOCKS && acks.length > 0),
        `after CHECKPOINT(${c}): ${statusesUpto} statuses, acks ${acks.join(',')}`,
      )
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

  it('refuses DATA for a block past the lead, whose status it has not sent (BLOCK_NOT_SCANNED)', async function () {
    this.timeout(60_000)
    const [client, server] = duplexPair()
    const served = handleConnection(server, {root})
    const reader = new FrameReader(client)
    const writer = new FrameWriter(client)
    try {
      await writer.send(FrameType.HELLO, hello('ahead.img', STATUS_LEAD_BLOCKS + 2 * MAX_STATUS_BATCH))
      assert.equal((await reader.next())?.type, FrameType.HELLO_OK)
      let upto = 0
      while (upto < STATUS_LEAD_BLOCKS) {
        const f = await reader.next()
        assert.equal(f?.type, FrameType.BLOCK_STATUS)
        upto += decodeBlockStatus(f!.payload).kinds.length
      }
      const data = Buffer.alloc(BS, 0x42)
      const h = blockHasher(HashAlgo.BLAKE3, Buffer.alloc(16, 7))
      await writer.send(FrameType.DATA, encodeDataFields(STATUS_LEAD_BLOCKS, h.hash(data)), data)
      assert.equal(await errorCode(reader, writer), 'BLOCK_NOT_SCANNED')
      await served
      const replica = await fs.readFile(path.join(root, 'ahead.img'))
      assert.ok(replica.subarray(STATUS_LEAD_BLOCKS * BS, (STATUS_LEAD_BLOCKS + 1) * BS).equals(Buffer.alloc(BS)), 'the refused block was not written')
    } finally {
      client.destroy()
    }
  })

  it('a CHECKPOINT_ACK means the blocks below it are written on the replica (the client reuses their buffers then)', async () => {
    const blocks = 64
    const [client, server] = duplexPair()
    const served = handleConnection(server, {root})
    const reader = new FrameReader(client)
    const writer = new FrameWriter(client)
    try {
      await writer.send(FrameType.HELLO, hello('ack.img', blocks))
      assert.equal((await reader.next())?.type, FrameType.HELLO_OK)
      assert.equal(decodeBlockStatus((await reader.next())!.payload).kinds.length, blocks)
      const h = blockHasher(HashAlgo.BLAKE3, Buffer.alloc(16, 7))
      const sent: Buffer[] = []
      for (let b = 0; b < 8; b++) {
        const data = Buffer.alloc(BS, b + 1)
        sent.push(data)
        await writer.send(FrameType.DATA, encodeDataFields(b, h.hash(data)), data)
      }
      await writer.send(FrameType.CHECKPOINT, encodeU64(8))
      const ack = await reader.next()
      assert.equal(ack?.type, FrameType.CHECKPOINT_ACK)
      assert.equal(decodeU64(ack!.payload, 'CHECKPOINT_ACK'), 8)
      // Read before anything else is sent or the session ends: the ack alone vouches for it.
      const fh = await fs.open(path.join(root, 'ack.img'))
      try {
        const on = Buffer.alloc(8 * BS)
        await fh.read(on, 0, on.length, 0)
        assert.ok(on.equals(Buffer.concat(sent)), 'the acknowledged blocks are on the replica')
      } finally {
        await fh.close()
      }
    } finally {
      writer.end()
      await served
      client.destroy()
    }
  })
})
