// The receiver's delta session when its client vanishes at the worst moment: after BUNDLE_END,
// while the bundle is applied. The commit goes ahead (the bundle is sealed and checked), and
// the journal must go with the session even though COMMITTED could not be sent. A left journal
// is harmless to the data (recovery drops a journal whose sequence the state records) but the
// replica would carry it until the next push or the next start of `vdrep serve`.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {Duplex} from 'node:stream'
import {tempDir} from '../../helpers/disks.js'
import {blockHasher, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {digestData} from '../../../src/core/protocol/bundle-digest.js'
import {encodeFrameHeader, FrameType, PROTOCOL_VERSION, type FrameTypeId} from '../../../src/core/protocol/frame.js'
import {encodeBundleBegin, encodeBundleEnd, encodeDataFields, encodeHello, SyncMode} from '../../../src/core/protocol/messages.js'
import {journalPathFor} from '../../../src/core/delta/journal.js'
import {readReplicaState, writeReplicaState} from '../../../src/core/receiver/replica-state.js'
import {handleConnection} from '../../../src/core/receiver/session.js'
import {deltaDoubt} from '../../../src/core/delta/receiver.js'

const BS = 4096
const BLOCKS = 8
const REPLICA_ID = Buffer.alloc(16, 3)

function frame(type: FrameTypeId, ...parts: Buffer[]): Buffer {
  const payload = Buffer.concat(parts)
  return Buffer.concat([encodeFrameHeader(type, payload.length), payload])
}

/** Reads the given bytes; the first write (HELLO_OK) goes through, every later one fails as on a reset socket. */
class VanishingClient extends Duplex {
  writes = 0
  constructor(private readonly bytes: Buffer) {
    super()
  }

  override _read(): void {
    this.push(this.bytes)
    this.push(null)
  }

  override _write(_chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.writes++
    if (this.writes === 1) callback()
    else callback(Object.assign(new Error('write ECONNRESET'), {code: 'ECONNRESET'}))
  }
}

describe('receiver delta session: the client gone before COMMITTED', () => {
  let root: string
  beforeEach(async () => {
    root = await tempDir()
  })
  afterEach(async () => {
    await fs.rm(root, {recursive: true, force: true})
  })

  it('commits the sealed bundle and removes its journal, though the answer cannot be sent', async () => {
    const replica = path.join(root, 'r.img')
    await fs.writeFile(replica, Buffer.alloc(BS * BLOCKS, 1), {mode: 0o600})
    const st = await fs.stat(replica, {bigint: true})
    await writeReplicaState(replica, {
      replicaId: REPLICA_ID.toString('hex'),
      complete: true,
      resumeBlock: BLOCKS,
      diskSize: BS * BLOCKS,
      blockSize: BS,
      hashAlgo: HashAlgo.BLAKE3,
      generation: 1,
      lastSeq: 4,
      digest: '',
      size: Number(st.size),
      mtimeNs: st.mtimeNs.toString(),
      ctimeNs: st.ctimeNs.toString(),
      updatedMs: Date.now(),
    })

    const hasher = blockHasher(HashAlgo.BLAKE3, REPLICA_ID)
    const data = Buffer.alloc(BS, 0x5a)
    const hash = hasher.hash(data)
    const digest = hasher.createStream()
    digestData(digest, 2, hash)
    const client = new VanishingClient(
      Buffer.concat([
        frame(
          FrameType.HELLO,
          encodeHello({
            version: PROTOCOL_VERSION,
            mode: SyncMode.DELTA,
            hashAlgo: HashAlgo.BLAKE3,
            blockSize: BS,
            diskSize: BS * BLOCKS,
            replicaId: REPLICA_ID,
            flags: 0,
            lastCommit: Buffer.alloc(16),
            nextCommit: Buffer.alloc(16, 1),
            path: 'r.img',
          }),
        ),
        frame(FrameType.BUNDLE_BEGIN, encodeBundleBegin({seq: 5, blockCount: 1, diskSize: BS * BLOCKS})),
        frame(FrameType.DATA, encodeDataFields(2, hash), data),
        frame(FrameType.BUNDLE_END, encodeBundleEnd({seq: 5, blockCount: 1, digest: digest.digest()})),
      ]),
    )
    const lines: string[] = []
    await handleConnection(client, {root, modes: [SyncMode.DELTA], log: (l) => lines.push(l)})

    assert.ok(client.writes >= 2, 'the receiver tried to answer COMMITTED')
    const {state} = await readReplicaState(replica)
    assert.equal(state?.lastSeq, 5, `the sealed bundle was committed (${lines.join('; ')})`)
    const bytes = await fs.readFile(replica)
    assert.ok(bytes.subarray(2 * BS, 3 * BS).equals(data), 'block 2 applied')
    assert.ok(bytes.subarray(0, 2 * BS).equals(Buffer.alloc(2 * BS, 1)), 'other blocks untouched')
    assert.ok(!(await fs.stat(journalPathFor(replica)).catch(() => undefined)), `the journal was left behind (${lines.join('; ')})`)
  })

  it('a replica whose state carries a doubt takes no delta; a completed full sync clears it', async () => {
    const hello = {
      version: PROTOCOL_VERSION,
      mode: SyncMode.DELTA,
      hashAlgo: HashAlgo.BLAKE3,
      blockSize: BS,
      diskSize: BS * BLOCKS,
      replicaId: REPLICA_ID,
      flags: 0,
      lastCommit: Buffer.alloc(16),
      nextCommit: Buffer.alloc(16, 1),
      path: 'r.img',
    }
    const replica = path.join(root, 'r.img')
    await fs.writeFile(replica, Buffer.alloc(BS * BLOCKS))
    const fh = await fs.open(replica, 'r+')
    try {
      const st = await fh.stat({bigint: true})
      const state = {
        replicaId: REPLICA_ID.toString('hex'),
        complete: true,
        resumeBlock: 0,
        diskSize: BS * BLOCKS,
        blockSize: BS,
        hashAlgo: HashAlgo.BLAKE3,
        generation: 1,
        lastSeq: 4,
        digest: '',
        size: BS * BLOCKS,
        mtimeNs: st.mtimeNs.toString(),
        ctimeNs: st.ctimeNs.toString(),
        updatedMs: Date.now(),
      }
      assert.equal(await deltaDoubt(hello, state, undefined, fh), null)
      assert.match((await deltaDoubt(hello, {...state, doubt: 'an apply was interrupted'}, undefined, fh)) ?? '', /an apply was interrupted/)
      // What markComplete writes (doubt: undefined) reads back without one.
      await writeReplicaState(replica, {...state, doubt: undefined})
      assert.equal((await readReplicaState(replica)).state?.doubt, undefined)
    } finally {
      await fh.close()
    }
  })
})
