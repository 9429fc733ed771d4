// The receiver's side of a group member (src/core/group/receiver-hold.ts) with scripted client
// bytes: a held bundle is applied only when a group record names it, and a GROUP_COMMIT that
// names a member not held here, a GROUP_APPLY with no record, or a client gone while held,
// leave the replica as it was, no record, and no held journal.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {Duplex} from 'node:stream'
import {tempDir} from '../../helpers/disks.js'
import {blockHasher, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {digestData} from '../../../src/core/protocol/bundle-digest.js'
import {encodeFrameHeader, FrameType, PROTOCOL_VERSION, type FrameTypeId} from '../../../src/core/protocol/frame.js'
import {decodeError, encodeBundleBegin, encodeBundleEnd, encodeDataFields, encodeHello, HelloFlag, SyncMode} from '../../../src/core/protocol/messages.js'
import {encodeGroupApply, encodeGroupCommit} from '../../../src/core/protocol/group-messages.js'
import {readReplicaState, writeReplicaState} from '../../../src/core/receiver/replica-state.js'
import {handleConnection} from '../../../src/core/receiver/session.js'
import {heldJournalPathFor} from '../../../src/core/group/held-journal.js'
import {listGroupRecords, writeGroupRecord} from '../../../src/core/group/store.js'

const BS = 4096
const BLOCKS = 8
const REPLICA_ID = Buffer.alloc(16, 3)
const COMMIT = Buffer.alloc(16, 9)

function frame(type: FrameTypeId, ...parts: Buffer[]): Buffer {
  const payload = Buffer.concat(parts)
  return Buffer.concat([encodeFrameHeader(type, payload.length), payload])
}

/** Sends the scripted bytes, then hangs up; keeps every frame the receiver sent. */
class ScriptedClient extends Duplex {
  out = Buffer.alloc(0)
  constructor(private readonly bytes: Buffer) {
    super()
  }
  override _read(): void {
    this.push(this.bytes)
    this.push(null)
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, callback: () => void): void {
    this.out = Buffer.concat([this.out, chunk])
    callback()
  }
  /** Frame types the receiver sent, in order, and the last ERROR's code. */
  frames(): {types: number[]; error?: string} {
    const types: number[] = []
    let error: string | undefined
    for (let at = 0; at + 8 <= this.out.length;) {
      const type = this.out.readUInt8(at + 2)
      const len = this.out.readUInt32LE(at + 4)
      if (type === FrameType.ERROR) error = decodeError(this.out.subarray(at + 8, at + 8 + len)).code
      types.push(type)
      at += 8 + len
    }
    return {types, error}
  }
}

describe('group member on the receiver (held bundle)', () => {
  let root: string
  let replica: string
  const data = Buffer.alloc(BS, 0x5a)

  beforeEach(async () => {
    root = await tempDir()
    replica = path.join(root, 'r.img')
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
  })
  afterEach(async () => {
    await fs.rm(root, {recursive: true, force: true})
  })

  function bundle(): Buffer {
    const hasher = blockHasher(HashAlgo.BLAKE3, REPLICA_ID)
    const hash = hasher.hash(data)
    const digest = hasher.createStream()
    digestData(digest, 2, hash)
    return Buffer.concat([
      frame(
        FrameType.HELLO,
        encodeHello({
          version: PROTOCOL_VERSION,
          mode: SyncMode.DELTA,
          hashAlgo: HashAlgo.BLAKE3,
          blockSize: BS,
          diskSize: BS * BLOCKS,
          replicaId: REPLICA_ID,
          flags: HelloFlag.GROUP,
          lastCommit: Buffer.alloc(16),
          nextCommit: COMMIT,
          path: 'r.img',
        }),
      ),
      frame(FrameType.BUNDLE_BEGIN, encodeBundleBegin({seq: 5, blockCount: 1, diskSize: BS * BLOCKS})),
      frame(FrameType.DATA, encodeDataFields(2, hash), data),
      frame(FrameType.BUNDLE_END, encodeBundleEnd({seq: 5, blockCount: 1, digest: digest.digest()})),
    ])
  }
  const member = (p: string) => ({path: p, seq: 5, replicaId: REPLICA_ID, commitId: COMMIT})
  const run = async (...after: Buffer[]) => {
    const c = new ScriptedClient(Buffer.concat([bundle(), ...after]))
    await handleConnection(c, {root, modes: [SyncMode.DELTA]})
    return c.frames()
  }
  async function unchanged(): Promise<void> {
    assert.equal((await readReplicaState(replica)).state?.lastSeq, 4, 'the replica did not move')
    assert.ok((await fs.readFile(replica)).equals(Buffer.alloc(BS * BLOCKS, 1)))
    await assert.rejects(fs.stat(heldJournalPathFor(replica)), 'no held journal is left')
  }

  it('a client gone while held: a record of this path and sequence from an earlier replica there (another replica id, or written before its last full sync) does not apply the bundle', async () => {
    // Another source's replica once lived at this path and reached sequence 5 in group "old".
    await writeGroupRecord(root, {name: 'old', committedMs: Date.now(), members: [{...member('r.img'), replicaId: Buffer.alloc(16, 7)}]})
    assert.deepEqual((await run()).types, [FrameType.HELLO_OK, FrameType.JOURNALED])
    await unchanged()
    // This replica's own group point 5 of before its last full sync (which kept sequence 4).
    const {state} = await readReplicaState(replica)
    await writeGroupRecord(root, {name: 'before', committedMs: Date.now() - 60_000, members: [member('r.img')]})
    const fullSync = {fullSync: {seq: 4, ms: Date.now()}} // the state a full sync left (it kept sequence 4)
    await writeReplicaState(replica, {...(state as NonNullable<typeof state>), ...fullSync})
    assert.deepEqual((await run()).types, [FrameType.HELLO_OK, FrameType.JOURNALED])
    await unchanged()
  })

  it('GROUP_COMMIT then GROUP_APPLY: the record is written, then the member applied', async () => {
    const f = await run(
      frame(FrameType.GROUP_COMMIT, encodeGroupCommit({name: 'db', members: [member('r.img')]})),
      frame(FrameType.GROUP_APPLY, encodeGroupApply({name: 'db', groupSeq: 1})),
    )
    assert.deepEqual(f.types, [FrameType.HELLO_OK, FrameType.JOURNALED, FrameType.GROUP_COMMITTED, FrameType.COMMITTED])
    assert.equal((await readReplicaState(replica)).state?.lastSeq, 5)
    assert.ok((await fs.readFile(replica)).subarray(2 * BS, 3 * BS).equals(data))
    assert.deepEqual(
      (await listGroupRecords(root, 'db')).map((r) => r.members.map((m) => m.path)),
      [['r.img']],
    )
  })

  it('the client gone after JOURNALED, no record: the held bundle is dropped', async () => {
    const f = await run()
    assert.deepEqual(f.types, [FrameType.HELLO_OK, FrameType.JOURNALED])
    await unchanged()
  })

  it('the client gone after GROUP_COMMITTED: the record stands, so the member is applied anyway', async () => {
    const f = await run(frame(FrameType.GROUP_COMMIT, encodeGroupCommit({name: 'db', members: [member('r.img')]})))
    assert.deepEqual(f.types, [FrameType.HELLO_OK, FrameType.JOURNALED, FrameType.GROUP_COMMITTED])
    assert.equal((await readReplicaState(replica)).state?.lastSeq, 5)
    await assert.rejects(fs.stat(heldJournalPathFor(replica)))
  })

  it('a GROUP_COMMIT naming a member not held here, a GROUP_APPLY without a record, a path outside the root: refused, nothing applied', async () => {
    await fs.writeFile(path.join(root, 'other.img'), Buffer.alloc(BS))
    let f = await run(frame(FrameType.GROUP_COMMIT, encodeGroupCommit({name: 'db', members: [member('r.img'), member('other.img')]})))
    assert.equal(f.error, 'GROUP_MEMBER_NOT_HELD')
    await unchanged()
    assert.deepEqual(await listGroupRecords(root), [])
    f = await run(frame(FrameType.GROUP_APPLY, encodeGroupApply({name: 'db', groupSeq: 1})))
    assert.equal(f.error, 'GROUP_NOT_COMMITTED')
    await unchanged()
    f = await run(frame(FrameType.GROUP_COMMIT, encodeGroupCommit({name: 'db', members: [member('../x.img')]})))
    assert.equal(f.error, 'PATH_OUTSIDE_ROOT')
    await unchanged()
  })

  it('a second GROUP_COMMIT on one session is refused; the first record stands, so the member is applied', async () => {
    const commit = frame(FrameType.GROUP_COMMIT, encodeGroupCommit({name: 'db', members: [member('r.img')]}))
    const f = await run(commit, commit)
    assert.equal(f.error, 'FRAME_UNEXPECTED')
    assert.equal((await listGroupRecords(root, 'db')).length, 1)
    assert.equal((await readReplicaState(replica)).state?.lastSeq, 5)
  })
})
