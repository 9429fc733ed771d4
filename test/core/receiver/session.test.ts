// The receiver driven frame by frame by a hand-written client over an in-memory stream pair:
// a failed proof, hostile frames, and the rules a client must follow.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {tempDir} from '../../helpers/disks.js'
import {blockHasher, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {duplexPair} from '../../../src/core/transport/duplex-pair.js'
import {encodeFrameHeader, FrameType, PROTOCOL_VERSION} from '../../../src/core/protocol/frame.js'
import {FrameReader} from '../../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../../src/core/protocol/frame-writer.js'
import {
  decodeBlockStatus,
  decodeError,
  decodeVerifyResult,
  encodeDataFields,
  encodeDone,
  encodeHello,
  encodeU64,
  SyncMode,
} from '../../../src/core/protocol/messages.js'
import {handleConnection} from '../../../src/core/receiver/session.js'
import {decodeReplicaState} from '../../../src/core/receiver/replica-state.js'
import {ReplicaFile} from '../../../src/core/receiver/replica-file.js'

const BS = 4096
const BLOCKS = 8

function hello(p: string, over: Partial<Parameters<typeof encodeHello>[0]> = {}) {
  return encodeHello({
    version: PROTOCOL_VERSION,
    mode: SyncMode.FULLSYNC,
    hashAlgo: HashAlgo.BLAKE3,
    blockSize: BS,
    diskSize: BS * BLOCKS,
    replicaId: Buffer.alloc(16, 7),
    flags: 0,
    lastCommit: Buffer.alloc(16),
    nextCommit: Buffer.alloc(16, 1),
    path: p,
    ...over,
  })
}

describe('receiver session (hand-written client)', () => {
  let root: string
  beforeEach(async () => {
    root = await tempDir()
  })
  afterEach(async () => {
    await fs.rm(root, {recursive: true, force: true})
  })

  function connect() {
    const [client, server] = duplexPair()
    const served = handleConnection(server, {root})
    return {reader: new FrameReader(client), writer: new FrameWriter(client), served, client}
  }

  it('a digest that does not match leaves the replica incomplete and resets the resume point', async () => {
    const {reader, writer, served} = connect()
    await writer.send(FrameType.HELLO, hello('r.img'))
    assert.equal((await reader.next())?.type, FrameType.HELLO_OK)
    const st = await reader.next()
    assert.equal(st?.type, FrameType.BLOCK_STATUS)
    assert.equal(decodeBlockStatus(st!.payload).kinds.length, BLOCKS)
    const h = blockHasher(HashAlgo.BLAKE3, Buffer.alloc(16))
    const data = Buffer.alloc(BS, 0x5a)
    await writer.send(FrameType.DATA, encodeDataFields(0, h.hash(data)), data)
    await writer.send(FrameType.DONE, encodeDone({blockCount: BLOCKS, digest: Buffer.alloc(32, 1)}))
    let verdict
    for (let f = await reader.next(); f; f = await reader.next()) if (f.type === FrameType.VERIFY_RESULT) verdict = decodeVerifyResult(f.payload)
    await served
    assert.equal(verdict?.ok, false)
    const state = decodeReplicaState(await fs.readFile(path.join(root, 'r.img.vdrep')))
    assert.equal(state.complete, false)
    assert.equal(state.resumeBlock, 0, 'a failed proof resets the resume point')
  })

  /**
   * Read the receiver's frames without sending anything (a client waiting for statuses or an
   * ack) until it hangs up; its ERROR, if any. After 10 s the client gives up (the hang the
   * callers are about), so a receiver that never answers fails the test instead of stalling it.
   */
  async function errorWhileWaiting(reader: FrameReader, writer: FrameWriter, served: Promise<void>): Promise<ReturnType<typeof decodeError> | undefined> {
    let err: ReturnType<typeof decodeError> | undefined
    const timer = setTimeout(() => writer.end(), 10_000)
    for (let f = await reader.next(); f; f = await reader.next()) if (f.type === FrameType.ERROR) err = decodeError(f.payload)
    clearTimeout(timer)
    await served
    return err
  }

  it('a replica read error in the scan is answered at once, though the client sends nothing while it waits for statuses', async () => {
    const size = 16 << 20
    await fs.writeFile(path.join(root, 'eio.img'), Buffer.alloc(size, 0x11))
    const readAt = ReplicaFile.prototype.readAt
    ReplicaFile.prototype.readAt = async function (this: ReplicaFile, ...args: Parameters<typeof readAt>) {
      if (args[2] >= 8 << 20) throw Object.assign(new Error('EIO: i/o error (injected)'), {code: 'EIO'})
      return readAt.apply(this, args)
    }
    try {
      const {reader, writer, served} = connect()
      await writer.send(FrameType.HELLO, hello('eio.img', {diskSize: size}))
      // As the real client does: read statuses, send nothing (no block differs yet).
      const err = await errorWhileWaiting(reader, writer, served)
      assert.ok(err, 'no ERROR frame: the scan error waited for a frame the client never sent')
      assert.match(`${err.code} ${err.message}`, /EIO/)
    } finally {
      ReplicaFile.prototype.readAt = readAt
    }
  })

  it('a checkpoint that fails (fdatasync EIO) is answered at once, though the client waits for its ack', async () => {
    const sync = ReplicaFile.prototype.sync
    ReplicaFile.prototype.sync = async function () {
      throw Object.assign(new Error('EIO: i/o error (injected fdatasync)'), {code: 'EIO'})
    }
    try {
      const {reader, writer, served} = connect()
      await writer.send(FrameType.HELLO, hello('cp.img'))
      assert.equal((await reader.next())?.type, FrameType.HELLO_OK)
      assert.equal((await reader.next())?.type, FrameType.BLOCK_STATUS)
      const h = blockHasher(HashAlgo.BLAKE3, Buffer.alloc(16))
      const data = Buffer.alloc(BS, 0x5a)
      await writer.send(FrameType.DATA, encodeDataFields(0, h.hash(data)), data)
      await writer.send(FrameType.CHECKPOINT, encodeU64(BLOCKS)) // then wait for the ack, as the client does
      const err = await errorWhileWaiting(reader, writer, served)
      assert.ok(err, 'no ERROR frame: the failed checkpoint waited for a frame the client never sent')
      assert.match(`${err.code} ${err.message}`, /EIO/)
    } finally {
      ReplicaFile.prototype.sync = sync
    }
  })

  async function expectError(frames: Buffer[], code: RegExp): Promise<void> {
    const {reader, served, client} = connect()
    for (const f of frames) client.write(f)
    client.end()
    let err
    for (let f = await reader.next().catch(() => null); f; f = await reader.next().catch(() => null))
      if (f.type === FrameType.ERROR) err = decodeError(f.payload)
    await served
    assert.ok(err, 'the receiver answers with an ERROR frame')
    assert.match(err.code, code)
  }

  const frame = (type: number, payload: Buffer) => Buffer.concat([encodeFrameHeader(type as never, payload.length), payload])

  it('refuses hostile or out-of-order frames with a typed error and writes nothing', async () => {
    const raw = (b: number[]) => Buffer.from(b)
    await expectError([raw([0x00, 0x00, 1, 0, 0, 0, 0, 0])], /FRAME_BAD_MAGIC/)
    await expectError([raw([0x56, 0x44, 1, 0, 0xff, 0xff, 0xff, 0x7f])], /FRAME_TOO_LARGE/)
    await expectError([raw([0x56, 0x44, 99, 0, 0, 0, 0, 0])], /FRAME_UNKNOWN_TYPE/)
    await expectError([frame(FrameType.DONE, Buffer.alloc(40))], /FRAME_UNEXPECTED/)
    await expectError([frame(FrameType.HELLO, hello('../escape.img'))], /PATH_OUTSIDE_ROOT/)
    await expectError([frame(FrameType.HELLO, hello('/etc/passwd'))], /PATH_OUTSIDE_ROOT/)
    await expectError([frame(FrameType.HELLO, hello('x.img', {blockSize: 3000}))], /BAD_BLOCK_SIZE/)
    await expectError([frame(FrameType.HELLO, hello('x.img', {version: 9}))], /VERSION_MISMATCH/)
    // Reserved hello flags are refused, not ignored (doc/protocol.md, hello flags).
    await expectError([frame(FrameType.HELLO, hello('x.img', {flags: 1 << 12}))], /BAD_FLAGS/)
    // GROUP (a consistency group member) is a delta-port flag.
    await expectError([frame(FrameType.HELLO, hello('x.img', {flags: 1 << 7, mode: SyncMode.FULLSYNC}))], /BAD_FLAGS/)
    await expectError([frame(FrameType.HELLO, hello('x.img', {flags: 0x80000000}))], /BAD_FLAGS/)
    const h = blockHasher(HashAlgo.BLAKE3, Buffer.alloc(16))
    const data = Buffer.alloc(BS, 1)
    await expectError(
      [frame(FrameType.HELLO, hello('y.img')), frame(FrameType.DATA, Buffer.concat([encodeDataFields(BLOCKS + 5, h.hash(data)), data]))],
      /BLOCK_OUT_OF_RANGE|BLOCK_NOT_SCANNED/,
    )
    await expectError([frame(FrameType.HELLO, hello('z.img')), frame(FrameType.CHECKPOINT, encodeU64(BLOCKS * 100))], /CHECKPOINT_OUT_OF_RANGE/)
    await assert.rejects(fs.stat(path.join(path.dirname(root), 'escape.img')))
  })

  it('an error stops the scan: the ERROR frame comes without the statuses of the rest of a large disk', async function () {
    this.timeout(60_000)
    const blocks = 1 << 20 // a 4 GiB sparse replica: far more statuses than STATUS_LEAD_BLOCKS
    const {reader, writer, served} = connect()
    await writer.send(FrameType.HELLO, hello('big.img', {diskSize: BS * blocks}))
    assert.equal((await reader.next())?.type, FrameType.HELLO_OK)
    const st = await reader.next()
    assert.equal(st?.type, FrameType.BLOCK_STATUS)
    let statuses = decodeBlockStatus(st!.payload).kinds.length
    await writer.send(FrameType.DATA, encodeDataFields(1, Buffer.alloc(32, 9)), Buffer.alloc(BS, 3))
    let err
    for (let f = await reader.next(); f; f = await reader.next()) {
      if (f.type === FrameType.ERROR) err = decodeError(f.payload)
      if (f.type === FrameType.BLOCK_STATUS) statuses += decodeBlockStatus(f.payload).kinds.length
    }
    await served
    assert.equal(err?.code, 'BLOCK_BAD_HASH')
    // A client blocked sending DATA reads statuses only up to its own cap: a scan that went on
    // to the end of the disk held the ERROR frame back behind them (both sides waiting).
    assert.ok(statuses < blocks / 2, `${statuses} statuses were sent after the session had failed`)
  })

  it('refuses a block whose data does not match its hash', async () => {
    const {reader, writer, served} = connect()
    await writer.send(FrameType.HELLO, hello('w.img'))
    await reader.next()
    await reader.next()
    const data = Buffer.alloc(BS, 3)
    await writer.send(FrameType.DATA, encodeDataFields(1, Buffer.alloc(32, 9)), data)
    let err
    for (let f = await reader.next(); f; f = await reader.next()) if (f.type === FrameType.ERROR) err = decodeError(f.payload)
    await served
    assert.equal(err?.code, 'BLOCK_BAD_HASH')
    const written = await fs.readFile(path.join(root, 'w.img'))
    assert.ok(written.subarray(BS, 2 * BS).equals(Buffer.alloc(BS)), 'the bad block was not written')
  })

  it('a client on this thread (bodies not checksummed on arrival) whose block does not match its hash: never proved, even with the digest of the hashes it sent', async () => {
    const [client, server] = duplexPair()
    const served = handleConnection(server, {root, sameThreadClient: true})
    const reader = new FrameReader(client)
    const writer = new FrameWriter(client)
    await writer.send(FrameType.HELLO, hello('t.img'))
    assert.equal((await reader.next())?.type, FrameType.HELLO_OK)
    await reader.next()
    const h = blockHasher(HashAlgo.BLAKE3, Buffer.alloc(16))
    const claimed = h.hash(Buffer.alloc(BS, 4))
    await writer.send(FrameType.DATA, encodeDataFields(1, claimed), Buffer.alloc(BS, 3))
    // The digest a receiver that trusted the frame's hash would compute: every other block zero.
    const digest = h.createStream()
    for (let b = 0; b < BLOCKS; b++) digest.update(b === 1 ? claimed : h.zeroHash(BS))
    await writer.send(FrameType.DONE, encodeDone({blockCount: BLOCKS, digest: digest.digest()}))
    let verdict
    let err
    for (let f = await reader.next(); f; f = await reader.next()) {
      if (f.type === FrameType.VERIFY_RESULT) verdict = decodeVerifyResult(f.payload)
      if (f.type === FrameType.ERROR) err = decodeError(f.payload)
    }
    await served
    assert.notEqual(verdict?.ok, true, 'not proved')
    assert.match(err?.message ?? '', /block 1 .*reads back from the replica different/)
    const state = decodeReplicaState(await fs.readFile(path.join(root, 't.img.vdrep')))
    assert.equal(state.complete, false)
  })
})
