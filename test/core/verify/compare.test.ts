// Tests of src/core/verify/compare.ts, the client's half of a compare-only session, against a
// scripted receiver on an in-memory pair: the hello carries NO_WRITE; an honest receiver's
// statuses give the differing blocks; a receiver whose VERIFY_RESULT contradicts its own
// statuses, that hangs up after the hello, sends statuses out of order or a malformed answer
// is refused with its own code, never believed.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {blockHasher, HashAlgo, HASH_LENGTH} from '../../../src/core/hash/block-hash.js'
import {SourceDisk} from '../../../src/core/disk/source-disk.js'
import type {PsfHeader} from '../../../src/core/psf/header.js'
import {FrameType} from '../../../src/core/protocol/frame.js'
import {FrameReader} from '../../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../../src/core/protocol/frame-writer.js'
import {
  BlockKind,
  decodeHello,
  encodeBlockStatus,
  encodeHelloOk,
  encodeU64,
  encodeVerifyResult,
  HelloFlag,
  ReplicaStateKind,
} from '../../../src/core/protocol/messages.js'
import {streamCarrier} from '../../../src/core/transport/carrier.js'
import {duplexPair} from '../../../src/core/transport/duplex-pair.js'
import {compareWithReplica, type ComparedChunk} from '../../../src/core/verify/compare.js'
import {seededBytes, tempDir} from '../../helpers/disks.js'

const BS = 4096
const BLOCKS = 6
const replicaId = Buffer.alloc(16, 7)
const header = {hashAlgo: HashAlgo.SHA256, blockSize: BS, replicaId, lastCommit: Buffer.alloc(16)} as unknown as PsfHeader
const hasher = blockHasher(HashAlgo.SHA256, replicaId)

interface Script {
  /** The replica's blocks as the fake receiver reports them: a hash, or null for a zero block. */
  statuses: Array<Buffer | null>
  /** What to do after HELLO_OK. */
  after?: 'close' | 'out-of-order' | 'lie-ok' | 'lie-digest' | 'short-result'
}

/** A receiver that answers from a script; returns the hello flags it saw. */
async function fakeReceiver(reader: FrameReader, writer: FrameWriter, s: Script): Promise<number> {
  const hello = decodeHello((await reader.next())!.payload)
  await writer.send(
    FrameType.HELLO_OK,
    encodeHelloOk({version: 2, state: ReplicaStateKind.COMPLETE, replicaSize: BLOCKS * BS, resumeBlock: 0, replicaId, generation: 1, lastSeq: 0}),
  )
  if (s.after === 'close') {
    writer.end()
    return hello.flags
  }
  const kinds = Uint8Array.from(s.statuses.map((h) => (h ? BlockKind.HASH : BlockKind.ZERO)))
  const hashes = Buffer.concat(s.statuses.filter((h): h is Buffer => h !== null))
  await writer.send(FrameType.BLOCK_STATUS, encodeBlockStatus({startBlock: s.after === 'out-of-order' ? 1 : 0, kinds, hashes}))
  const digest = hasher.createStream()
  for (const h of s.statuses) digest.update(h ?? hasher.zeroHash(BS))
  let ours = digest.digest()
  for (;;) {
    const f = await reader.next()
    if (!f) return hello.flags
    if (f.type === FrameType.CHECKPOINT) await writer.send(FrameType.CHECKPOINT_ACK, f.payload)
    if (f.type !== FrameType.DONE) continue
    const theirs = f.payload.subarray(8)
    await writer.send(FrameType.CHECKPOINT_ACK, encodeU64(BLOCKS))
    if (s.after === 'short-result') {
      await writer.send(FrameType.VERIFY_RESULT, Buffer.from([1]))
    } else {
      if (s.after === 'lie-digest') ours = Buffer.alloc(HASH_LENGTH, 1)
      const ok = s.after === 'lie-ok' ? true : ours.equals(theirs)
      await writer.send(FrameType.VERIFY_RESULT, encodeVerifyResult({ok, digest: s.after === 'lie-ok' ? theirs : ours}))
    }
    writer.end()
    return hello.flags
  }
}

describe('verify/compare: the client of a compare-only session', () => {
  let dir: string
  let source: SourceDisk
  let blocks: Buffer[]

  before(async () => {
    dir = await tempDir('vdrep-compare-')
    blocks = Array.from({length: BLOCKS}, (_, i) => (i === 4 ? Buffer.alloc(BS) : seededBytes(`b${i}`, BS)))
    await fs.writeFile(path.join(dir, 'd.img'), Buffer.concat(blocks))
    source = await SourceDisk.open(path.join(dir, 'd.img'))
  })
  after(async () => {
    await source.close()
    await fs.rm(dir, {recursive: true, force: true})
  })

  const honest = (): Array<Buffer | null> => blocks.map((b, i) => (i === 4 ? null : hasher.hash(b)))

  async function run(s: Script): Promise<{outcome: Awaited<ReturnType<typeof compareWithReplica>>; flags: number; chunks: ComparedChunk[]}> {
    const [client, server] = duplexPair()
    const receiver = fakeReceiver(new FrameReader(server), new FrameWriter(server), s)
    receiver.catch(() => {})
    const conn = streamCarrier(client, 'r.img', async () => {})
    const chunks: ComparedChunk[] = []
    try {
      const outcome = await compareWithReplica({conn, source, header, diskSize: BLOCKS * BS, flags: 0, onChunk: (c) => chunks.push(c)})
      return {outcome, flags: await receiver, chunks}
    } finally {
      conn.abort()
    }
  }

  it('an honest receiver, equal replica: no differing block; the hello said NO_WRITE', async () => {
    const {outcome, flags} = await run({statuses: honest()})
    assert.equal(outcome.differing, 0)
    assert.ok(flags & HelloFlag.NO_WRITE)
    assert.equal(outcome.sourceDigest, outcome.replicaDigest)
  })

  it('an honest receiver, one block different and one zeroed: both differ, with the full sync actions', async () => {
    const st = honest()
    st[1] = hasher.hash(seededBytes('other', BS))
    st[2] = null
    const {outcome, chunks} = await run({statuses: st})
    assert.equal(outcome.differing, 2)
    assert.deepEqual([...chunks[0]!.action], [0, 2, 2, 0, 0, 0]) // SKIP, SEND, SEND (replica zero, source data)
  })

  it('refuses a VERIFY_RESULT that says equal while the statuses differ (RECEIVER_INCONSISTENT)', async () => {
    const st = honest()
    st[3] = hasher.hash(seededBytes('lie', BS))
    await assert.rejects(run({statuses: st, after: 'lie-ok'}), {code: 'RECEIVER_INCONSISTENT'})
  })

  it('refuses a digest that is not the one its statuses make (RECEIVER_INCONSISTENT)', async () => {
    await assert.rejects(run({statuses: honest(), after: 'lie-digest'}), {code: 'RECEIVER_INCONSISTENT'})
  })

  it('refuses a receiver that hangs up after the hello (RECEIVER_CLOSED)', async () => {
    await assert.rejects(run({statuses: honest(), after: 'close'}), {code: 'RECEIVER_CLOSED'})
  })

  it('refuses statuses out of order (STATUS_OUT_OF_ORDER)', async () => {
    await assert.rejects(run({statuses: honest(), after: 'out-of-order'}), {code: 'STATUS_OUT_OF_ORDER'})
  })

  it('refuses a short VERIFY_RESULT (FRAME_MALFORMED)', async () => {
    await assert.rejects(run({statuses: honest(), after: 'short-result'}), {code: 'FRAME_MALFORMED'})
  })
})
