// The end of a full sync on the receiver's side (receiver.ts, onDone): the last CHECKPOINT_ACK
// and VERIFY_RESULT are handed to the connection in one write. Sent as two, an sshd on the way
// (Nagle on for a tunnel-only login) held the verdict until the client's delayed ACK, ~40 ms at
// the end of every full sync over SSH. Driven by a hand-written client over an in-memory pair
// whose receiver end records each write it is given (a corked stream hands them over at once).
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import type {Duplex} from 'node:stream'
import {tempDir} from '../../helpers/disks.js'
import {HashAlgo} from '../../../src/core/hash/block-hash.js'
import {duplexPair} from '../../../src/core/transport/duplex-pair.js'
import {FRAME_HEADER_SIZE, FrameType, PROTOCOL_VERSION} from '../../../src/core/protocol/frame.js'
import {FrameReader} from '../../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../../src/core/protocol/frame-writer.js'
import {decodeBlockStatus, encodeDone, encodeHello, SyncMode} from '../../../src/core/protocol/messages.js'
import {handleConnection} from '../../../src/core/receiver/session.js'

const BS = 4096
const BLOCKS = 8

/** The frame types in one write, read from the bytes (header: magic u16, type u8, flags u8, length u32 LE). */
function frameTypes(bytes: Buffer): number[] {
  const types: number[] = []
  for (let at = 0; at + FRAME_HEADER_SIZE <= bytes.length; at += FRAME_HEADER_SIZE + bytes.readUInt32LE(at + 4)) types.push(bytes[at + 2])
  return types
}

/** Record what the receiver writes: each call of _write or _writev is one write. */
function recordWrites(end: Duplex): number[][] {
  const writes: number[][] = []
  const write = end._write.bind(end)
  end._writev = (chunks, callback) => {
    writes.push(frameTypes(Buffer.concat(chunks.map((c) => c.chunk as Buffer))))
    write(Buffer.concat(chunks.map((c) => c.chunk as Buffer)), 'buffer' as BufferEncoding, callback)
  }
  end._write = (chunk: Buffer, enc, callback) => {
    writes.push(frameTypes(chunk))
    write(chunk, enc, callback)
  }
  return writes
}

describe('full-sync receiver: the verdict', () => {
  let root: string
  beforeEach(async () => {
    root = await tempDir()
  })
  afterEach(async () => {
    await fs.rm(root, {recursive: true, force: true})
  })

  it('writes the last CHECKPOINT_ACK and VERIFY_RESULT together, in one write', async function () {
    this.timeout(60_000)
    await fs.writeFile(path.join(root, 'seed.img'), Buffer.alloc(BS * BLOCKS))
    const [client, server] = duplexPair()
    const writes = recordWrites(server)
    const served = handleConnection(server, {root})
    const reader = new FrameReader(client)
    const writer = new FrameWriter(client)
    try {
      const hello = {
        version: PROTOCOL_VERSION,
        mode: SyncMode.FULLSYNC,
        hashAlgo: HashAlgo.BLAKE3,
        blockSize: BS,
        diskSize: BS * BLOCKS,
        replicaId: Buffer.alloc(16, 7),
        flags: 0,
        lastCommit: Buffer.alloc(16),
        nextCommit: Buffer.alloc(16, 1),
        path: 'seed.img',
      }
      await writer.send(FrameType.HELLO, encodeHello(hello))
      assert.equal((await reader.next())?.type, FrameType.HELLO_OK)
      for (let upto = 0; upto < BLOCKS;) {
        const f = await reader.next()
        assert.equal(f?.type, FrameType.BLOCK_STATUS)
        upto += decodeBlockStatus(f!.payload).kinds.length
      }
      // Every block as it is (nothing sent); the digest is not the replica's, so the verdict
      // is a failed proof: it is written all the same, which is what this test looks at.
      await writer.send(FrameType.DONE, encodeDone({blockCount: BLOCKS, digest: Buffer.alloc(32)}))
      const seen: number[] = []
      for (let f = await reader.next(); f && f.type !== FrameType.VERIFY_RESULT; f = await reader.next()) seen.push(f.type)
      assert.deepEqual(seen, [FrameType.CHECKPOINT_ACK])
      const last = writes.find((w) => w.includes(FrameType.VERIFY_RESULT))
      assert.deepEqual(last, [FrameType.CHECKPOINT_ACK, FrameType.VERIFY_RESULT], `the receiver's writes: ${JSON.stringify(writes)}`)
    } finally {
      writer.end()
      await served
      client.destroy()
    }
  })
})
