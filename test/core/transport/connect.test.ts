// Where a local target's receiver runs: this thread, a worker only when VDREP_LOCAL_RECEIVER asks;
// and the Carrier that connectReceiver returns, over both local carriers, with the real receiver.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {HashAlgo} from '../../../src/core/hash/block-hash.js'
import {FrameType, PROTOCOL_VERSION} from '../../../src/core/protocol/frame.js'
import {decodeError, encodeHello, SyncMode} from '../../../src/core/protocol/messages.js'
import {connectReceiver, localReceiverCarrier} from '../../../src/core/transport/connect.js'

describe('local receiver carrier', () => {
  const saved = process.env.VDREP_LOCAL_RECEIVER
  afterEach(() => {
    if (saved === undefined) delete process.env.VDREP_LOCAL_RECEIVER
    else process.env.VDREP_LOCAL_RECEIVER = saved
  })

  it('is this thread whatever the disk size, a worker only when VDREP_LOCAL_RECEIVER=worker', () => {
    delete process.env.VDREP_LOCAL_RECEIVER
    assert.equal(localReceiverCarrier(), 'inline')
    process.env.VDREP_LOCAL_RECEIVER = 'worker'
    assert.equal(localReceiverCarrier(), 'worker')
    process.env.VDREP_LOCAL_RECEIVER = 'inline'
    assert.equal(localReceiverCarrier(), 'inline')
    process.env.VDREP_LOCAL_RECEIVER = 'bogus'
    assert.equal(localReceiverCarrier(), 'inline')
  })
})

describe('connectReceiver: the Carrier the engine uses, over both local carriers', () => {
  const saved = process.env.VDREP_LOCAL_RECEIVER
  let dir: string
  before(async () => (dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vdrep-carrier-'))))
  after(async () => {
    if (saved === undefined) delete process.env.VDREP_LOCAL_RECEIVER
    else process.env.VDREP_LOCAL_RECEIVER = saved
    await fs.rm(dir, {recursive: true, force: true})
  })

  for (const where of ['inline', 'worker'] as const) {
    it(`${where}: frames go both ways through carrier.writer and carrier.frames, and close() waits for the receiver`, async () => {
      process.env.VDREP_LOCAL_RECEIVER = where
      const carrier = await connectReceiver({kind: 'local', path: path.join(dir, 'replica.img')}, {port: 0})
      assert.equal(carrier.replicaPath, 'replica.img', "a local receiver is rooted at the replica's folder")
      // A block size the receiver refuses: it answers with an ERROR frame and ends, writing nothing.
      await carrier.writer.send(
        FrameType.HELLO,
        encodeHello({
          version: PROTOCOL_VERSION,
          mode: SyncMode.FULLSYNC,
          hashAlgo: HashAlgo.BLAKE3,
          blockSize: 3000,
          diskSize: 1 << 20,
          replicaId: Buffer.alloc(16, 7),
          flags: 0,
          lastCommit: Buffer.alloc(16),
          nextCommit: Buffer.alloc(16, 1),
          path: carrier.replicaPath,
        }),
      )
      const answer = await carrier.frames.next()
      assert.equal(answer?.type, FrameType.ERROR)
      assert.equal(decodeError(answer.payload).code, 'BAD_BLOCK_SIZE')
      assert.equal(await carrier.frames.next(), null, 'then a clean end')
      await carrier.close()
      assert.deepEqual(await fs.readdir(dir), [], 'nothing written')
    })
  }
})
