// The receiver's compare-only session (src/core/fullsync/receiver-compare.ts, HELLO flag
// NO_WRITE) driven by a hand-written client: it answers the full sync's conversation over a
// replica it never writes; DATA and ZERO_RUN are refused (and nothing lands); a missing replica
// is compared as zeros and not created (nor its state or lock file); the fence still applies
// unless the hello carries the user's flag; NO_WRITE on the delta port is refused.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {seededBytes, tempDir} from '../../helpers/disks.js'
import {snapshotTree} from '../../helpers/untouched.js'
import {blockHasher, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {duplexPair} from '../../../src/core/transport/duplex-pair.js'
import {FrameType, PROTOCOL_VERSION} from '../../../src/core/protocol/frame.js'
import {FrameReader} from '../../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../../src/core/protocol/frame-writer.js'
import {
  BlockKind,
  decodeBlockStatus,
  decodeError,
  decodeHelloOk,
  decodeVerifyResult,
  encodeDataFields,
  encodeDone,
  encodeHello,
  encodeRange,
  HelloFlag,
  ReplicaStateKind,
  SyncMode,
} from '../../../src/core/protocol/messages.js'
import {handleConnection} from '../../../src/core/receiver/session.js'
import {encodeJournalHeader, journalPathFor} from '../../../src/core/delta/journal.js'
import {encodeReplicaState, statePathFor, type ReplicaState} from '../../../src/core/receiver/replica-state.js'

const BS = 4096
const BLOCKS = 8
const replicaId = Buffer.alloc(16, 7)
const hasher = blockHasher(HashAlgo.BLAKE3, replicaId)

function hello(p: string, over: Partial<Parameters<typeof encodeHello>[0]> = {}) {
  return encodeHello({
    version: PROTOCOL_VERSION,
    mode: SyncMode.FULLSYNC,
    hashAlgo: HashAlgo.BLAKE3,
    blockSize: BS,
    diskSize: BS * BLOCKS,
    replicaId,
    flags: HelloFlag.NO_WRITE,
    lastCommit: Buffer.alloc(16),
    nextCommit: Buffer.alloc(16, 1),
    path: p,
    ...over,
  })
}

describe('receiver: compare-only session (NO_WRITE)', () => {
  let root: string
  let replica: string
  let data: Buffer
  beforeEach(async () => {
    root = await tempDir()
    replica = path.join(root, 'r.img')
    data = seededBytes('replica', BS * BLOCKS)
    data.fill(0, 2 * BS, 3 * BS) // block 2 is zeros
    await fs.writeFile(replica, data, {mode: 0o600})
    const st = await fs.stat(replica, {bigint: true})
    const state: ReplicaState = {
      replicaId: replicaId.toString('hex'),
      complete: true,
      resumeBlock: 0,
      diskSize: BS * BLOCKS,
      blockSize: BS,
      hashAlgo: HashAlgo.BLAKE3,
      generation: 1,
      lastSeq: 3,
      digest: '',
      size: Number(st.size),
      mtimeNs: st.mtimeNs.toString(),
      ctimeNs: st.ctimeNs.toString(),
      updatedMs: 1,
    }
    await fs.writeFile(statePathFor(replica), encodeReplicaState(state), {mode: 0o600})
    await fs.writeFile(`${replica}.vdrep.lock`, '', {mode: 0o600})
  })
  afterEach(async () => {
    await fs.rm(root, {recursive: true, force: true})
  })

  function connect() {
    const [client, server] = duplexPair()
    const served = handleConnection(server, {root, lockAcrossProcesses: true})
    return {reader: new FrameReader(client), writer: new FrameWriter(client), served}
  }

  async function statuses(reader: FrameReader): Promise<{kinds: number[]; hashes: Buffer[]}> {
    const kinds: number[] = []
    const hashes: Buffer[] = []
    while (kinds.length < BLOCKS) {
      const f = (await reader.next())!
      assert.equal(f.type, FrameType.BLOCK_STATUS)
      const st = decodeBlockStatus(f.payload)
      kinds.push(...st.kinds)
      for (let i = 0; i < st.hashes.length; i += 32) hashes.push(st.hashes.subarray(i, i + 32))
    }
    return {kinds, hashes}
  }

  it('answers like a full sync (HELLO_OK, statuses, DONE -> VERIFY_RESULT) and writes nothing', async () => {
    const before = await snapshotTree([root])
    const {reader, writer, served} = connect()
    await writer.send(FrameType.HELLO, hello('r.img'))
    const ok = decodeHelloOk((await reader.next())!.payload)
    assert.equal(ok.state, ReplicaStateKind.COMPLETE)
    assert.equal(ok.lastSeq, 3)
    const {kinds, hashes} = await statuses(reader)
    assert.equal(kinds[2], BlockKind.ZERO)
    assert.deepEqual(hashes[0], hasher.hash(data.subarray(0, BS)))
    const digest = hasher.createStream()
    for (let b = 0; b < BLOCKS; b++) digest.update(b === 2 ? hasher.zeroHash(BS) : hasher.hash(data.subarray(b * BS, (b + 1) * BS)))
    await writer.send(FrameType.DONE, encodeDone({blockCount: BLOCKS, digest: digest.digest()}))
    assert.equal((await reader.next())!.type, FrameType.CHECKPOINT_ACK)
    const result = decodeVerifyResult((await reader.next())!.payload)
    assert.equal(result.ok, true)
    await served
    assert.deepEqual(await snapshotTree([root]), before)
  })

  it('refuses DATA and ZERO_RUN: nothing lands on the replica', async () => {
    for (const frame of ['data', 'zero'] as const) {
      const before = await snapshotTree([root])
      const {reader, writer, served} = connect()
      await writer.send(FrameType.HELLO, hello('r.img'))
      await reader.next()
      await statuses(reader)
      if (frame === 'data') {
        const block = Buffer.alloc(BS, 0x41)
        await writer.send(FrameType.DATA, encodeDataFields(0, hasher.hash(block)), block)
      } else await writer.send(FrameType.ZERO_RUN, encodeRange(0, 2))
      const f = (await reader.next())!
      assert.equal(f.type, FrameType.ERROR)
      assert.equal(decodeError(f.payload).code, 'FRAME_UNEXPECTED')
      await served
      assert.deepEqual(await snapshotTree([root]), before, frame)
    }
  })

  it('a missing replica reads as zeros and is not created (no file, state or lock file)', async () => {
    const {reader, writer, served} = connect()
    await writer.send(FrameType.HELLO, hello('new.img'))
    const ok = decodeHelloOk((await reader.next())!.payload)
    assert.equal(ok.state, ReplicaStateKind.MISSING)
    const {kinds} = await statuses(reader)
    assert.deepEqual(kinds, new Array(BLOCKS).fill(BlockKind.ZERO))
    writer.end()
    await served
    assert.deepEqual((await fs.readdir(root)).sort(), ['r.img', 'r.img.vdrep', 'r.img.vdrep.lock'])
  })

  it('a replica written behind vdrep is refused (REPLICA_DIVERGED) unless the hello carries DISCARD_REPLICA_CHANGES', async () => {
    await fs.appendFile(replica, Buffer.alloc(0))
    await fs.utimes(replica, new Date(), new Date(Date.now() + 5000))
    for (const [flags, code] of [
      [HelloFlag.NO_WRITE, 'REPLICA_DIVERGED'],
      [HelloFlag.NO_WRITE | HelloFlag.DISCARD_REPLICA_CHANGES, null],
    ] as const) {
      const before = await snapshotTree([root])
      const {reader, writer, served} = connect()
      await writer.send(FrameType.HELLO, hello('r.img', {flags}))
      const f = (await reader.next())!
      if (code) {
        assert.equal(f.type, FrameType.ERROR)
        assert.equal(decodeError(f.payload).code, code)
      } else assert.equal(f.type, FrameType.HELLO_OK)
      writer.end()
      await served
      assert.deepEqual(await snapshotTree([root]), before)
    }
  })

  it("an interrupted push's journal for the next sequence: refused (REPLICA_JOURNAL_PENDING), neither replayed nor removed; an applied one is ignored", async () => {
    for (const [seq, code] of [
      [4, 'REPLICA_JOURNAL_PENDING'],
      [3, null],
    ] as const) {
      await fs.writeFile(journalPathFor(replica), encodeJournalHeader({blockSize: BS, seq, diskSize: BS * BLOCKS, replicaId, hashAlgo: HashAlgo.BLAKE3}))
      const before = await snapshotTree([root])
      const {reader, writer, served} = connect()
      await writer.send(FrameType.HELLO, hello('r.img'))
      const f = (await reader.next())!
      if (code) {
        assert.equal(f.type, FrameType.ERROR)
        assert.equal(decodeError(f.payload).code, code)
      } else assert.equal(f.type, FrameType.HELLO_OK)
      writer.end()
      await served
      assert.deepEqual(await snapshotTree([root]), before)
    }
  })

  it('NO_WRITE on the delta port: BAD_FLAGS', async () => {
    const {reader, writer, served} = connect()
    await writer.send(FrameType.HELLO, hello('r.img', {mode: SyncMode.DELTA}))
    const f = (await reader.next())!
    assert.equal(f.type, FrameType.ERROR)
    assert.equal(decodeError(f.payload).code, 'BAD_FLAGS')
    await served
  })
})
