// The receiver's restore-point query (mode POINTS), in process over the real session code:
// the owner gets the listing and can set retention; another source's client, a hostile or
// out-of-place frame, a bad policy and the wrong port are refused with an ERROR and change
// nothing; a listing never waits for the replica lock, a retention change takes it.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {Duplex} from 'node:stream'
import {tempDir} from '../../helpers/disks.js'
import {HashAlgo} from '../../../src/core/hash/block-hash.js'
import {acquireReplica} from '../../../src/core/locks/index.js'
import {decodeFrameHeader, encodeFrameHeader, FRAME_HEADER_SIZE, FrameType, PROTOCOL_VERSION, type FrameTypeId} from '../../../src/core/protocol/frame.js'
import {decodeError, encodeDataFields, encodeHello, SyncMode} from '../../../src/core/protocol/messages.js'
import {decodePointsList, encodePointsRequest, PointsOp, type PointsList} from '../../../src/core/protocol/points-messages.js'
import {decodeRoomInfo, RoomReplica} from '../../../src/core/protocol/room-messages.js'
import {readReplicaState, writeReplicaState} from '../../../src/core/receiver/replica-state.js'
import {handleConnection} from '../../../src/core/receiver/session.js'

const BS = 4096
const OWNER = Buffer.alloc(16, 7)
const OTHER = Buffer.alloc(16, 8)

function frame(type: FrameTypeId, payload: Buffer): Buffer {
  return Buffer.concat([encodeFrameHeader(type, payload.length), payload])
}

const hello = (replicaId: Buffer, mode: number = SyncMode.POINTS) => helloFor(replicaId, 'r.img', mode)
const helloFor = (replicaId: Buffer, replicaPath: string, mode: number = SyncMode.POINTS) =>
  frame(
    FrameType.HELLO,
    encodeHello({
      version: PROTOCOL_VERSION,
      mode,
      hashAlgo: HashAlgo.XXH3,
      blockSize: BS,
      diskSize: BS * 8,
      replicaId,
      flags: 0,
      lastCommit: Buffer.alloc(16),
      nextCommit: Buffer.alloc(16),
      path: replicaPath,
    }),
  )

/** Feeds the given bytes, keeps what the receiver writes. */
class Client extends Duplex {
  out: Buffer[] = []
  constructor(private readonly bytes: Buffer) {
    super()
  }
  override _read(): void {
    this.push(this.bytes)
    this.push(null)
  }
  override _write(c: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.out.push(c)
    cb()
  }
  frames(): Array<{type: number; payload: Buffer}> {
    const all = Buffer.concat(this.out)
    const got: Array<{type: number; payload: Buffer}> = []
    for (let at = 0; at < all.length;) {
      const h = decodeFrameHeader(all.subarray(at))
      got.push({type: h.type, payload: all.subarray(at + FRAME_HEADER_SIZE, at + FRAME_HEADER_SIZE + h.length)})
      at += FRAME_HEADER_SIZE + h.length
    }
    return got
  }
}

describe('receiver: the restore-point query (mode POINTS)', () => {
  let root: string
  let replica: string

  beforeEach(async () => {
    root = await tempDir()
    replica = path.join(root, 'r.img')
    await fs.writeFile(replica, Buffer.alloc(BS * 8, 1), {mode: 0o600})
    const st = await fs.stat(replica, {bigint: true})
    await writeReplicaState(replica, {
      replicaId: OWNER.toString('hex'),
      complete: true,
      resumeBlock: 8,
      diskSize: BS * 8,
      blockSize: BS,
      hashAlgo: HashAlgo.XXH3,
      generation: 1,
      lastSeq: 3,
      digest: '',
      size: Number(st.size),
      mtimeNs: st.mtimeNs.toString(),
      ctimeNs: st.ctimeNs.toString(),
      updatedMs: Date.now(),
      commitMs: 1_700_000_000_000,
    })
  })
  afterEach(async () => {
    await fs.rm(root, {recursive: true, force: true})
  })

  async function ask(bytes: Buffer, modes?: number[]): Promise<{list?: PointsList; error?: {code: string; message: string}}> {
    const c = new Client(bytes)
    await handleConnection(c, {root, modes, lockAcrossProcesses: true})
    const frames = c.frames()
    assert.equal(frames.length, 1, `one answer, got ${frames.length}`)
    const f = frames[0]
    if (f.type === FrameType.ERROR) return {error: decodeError(f.payload)}
    assert.equal(f.type, FrameType.POINTS_LIST)
    return {list: decodePointsList(f.payload)}
  }

  const list = frame(FrameType.POINTS_REQUEST, encodePointsRequest({op: PointsOp.LIST, retention: ''}))
  const setRet = (spec: string) => frame(FrameType.POINTS_REQUEST, encodePointsRequest({op: PointsOp.SET_RETENTION, retention: spec}))

  it('ROOM: answered to any client, reads only: this source, another source (no sizes), a missing replica, a seed', async () => {
    const room = frame(FrameType.POINTS_REQUEST, encodePointsRequest({op: PointsOp.ROOM, retention: ''}))
    const askRoom = async (replicaId: Buffer, name = 'r.img') => {
      const c = new Client(Buffer.concat([helloFor(replicaId, name), room]))
      await handleConnection(c, {root, lockAcrossProcesses: true})
      const frames = c.frames()
      assert.equal(frames.length, 1)
      if (frames[0].type === FrameType.ERROR) return {error: decodeError(frames[0].payload)}
      assert.equal(frames[0].type, FrameType.ROOM_INFO)
      return {room: decodeRoomInfo(frames[0].payload)}
    }
    const before = await fs.stat(replica)
    const mine = (await askRoom(OWNER)).room!
    assert.equal(mine.replica, RoomReplica.THIS_SOURCE)
    assert.equal(mine.replicaSize, BS * 8)
    assert.ok(mine.freeBytes > 0 && mine.freeBytes <= mine.totalBytes)
    assert.deepEqual(
      {...(await askRoom(OTHER)).room!, freeBytes: 0},
      {replica: RoomReplica.OTHER_SOURCE, flags: 0, replicaSize: 0, replicaAllocated: 0, freeBytes: 0, totalBytes: mine.totalBytes},
    )
    assert.equal((await askRoom(OTHER, 'new.img')).room!.replica, RoomReplica.MISSING)
    await fs.writeFile(path.join(root, 'seed.img'), Buffer.alloc(BS, 3))
    assert.equal((await askRoom(OTHER, 'seed.img')).room!.replica, RoomReplica.NO_STATE)
    assert.equal((await askRoom(OTHER, '../out.img')).error?.code, 'PATH_OUTSIDE_ROOT')
    const after = await fs.stat(replica)
    assert.equal(after.mtimeMs, before.mtimeMs, 'nothing written')
    assert.deepEqual((await fs.readdir(root)).sort(), ['r.img', 'r.img.vdrep', 'seed.img'].sort(), 'no lock file, no state made')
  })

  it('lists the points to the replica owner', async () => {
    const {list: l, error} = await ask(Buffer.concat([hello(OWNER), list]))
    assert.equal(error, undefined, error?.message)
    assert.equal(l!.lastSeq, 3)
    assert.deepEqual(
      l!.points.map((p) => [p.seq, p.current, p.timeMs]),
      [[3, true, 1_700_000_000_000]],
    )
    assert.match(l!.retention, /default/)
  })

  it('sets retention for the owner: recorded in the replica state by the receiver', async () => {
    const {list: l, error} = await ask(Buffer.concat([hello(OWNER), setRet('count:5')]))
    assert.equal(error, undefined, error?.message)
    assert.equal(l!.retention, 'count:5')
    assert.equal((await readReplicaState(replica)).state?.retention, 'count:5')
  })

  it("DESCRIBE_SOURCE records the source and adopts the init's retention only when the replica has none", async () => {
    const describe = (retention: string) =>
      frame(FrameType.POINTS_REQUEST, encodePointsRequest({op: PointsOp.DESCRIBE_SOURCE, retention, source: {host: 'pm1', disk: '/vm/a.img', rpoSeconds: 300}}))
    const first = await ask(Buffer.concat([hello(OWNER), describe('count:4')]))
    assert.equal(first.error, undefined, first.error?.message)
    let s = (await readReplicaState(replica)).state!
    assert.deepEqual([s.source, s.rpoSeconds, s.retention], [{host: 'pm1', disk: '/vm/a.img'}, 300, 'count:4'])
    await ask(Buffer.concat([hello(OWNER), setRet('count:9')]))
    await ask(Buffer.concat([hello(OWNER), describe('count:4')]))
    s = (await readReplicaState(replica)).state!
    assert.equal(s.retention, 'count:9', 'a policy set since init is kept')
    const bad = await ask(Buffer.concat([hello(OWNER), describe('whenever')]))
    assert.equal(bad.error?.code, 'RETENTION_BAD')
  })

  it('another source (another replica id) learns nothing of the points and changes nothing', async () => {
    const describeOther = frame(
      FrameType.POINTS_REQUEST,
      encodePointsRequest({op: PointsOp.DESCRIBE_SOURCE, retention: 'off', source: {host: 'x', disk: '/x', rpoSeconds: 60}}),
    )
    for (const req of [list, setRet('off'), describeOther]) {
      const {list: l, error} = await ask(Buffer.concat([hello(OTHER), req]))
      assert.equal(l, undefined)
      assert.equal(error?.code, 'REPLICA_FOREIGN')
      assert.doesNotMatch(error!.message, /\b3\b.*current|count/)
    }
    assert.equal((await readReplicaState(replica)).state?.retention, undefined)
  })

  it('refuses hostile and out-of-place frames, a bad policy and the wrong port; nothing changes', async () => {
    const before = await fs.readFile(`${replica}.vdrep`)
    const cases: Array<[string, Buffer, string, number[]?]> = [
      [
        'a DATA frame instead of the request',
        Buffer.concat([hello(OWNER), frame(FrameType.DATA, Buffer.concat([encodeDataFields(0, Buffer.alloc(32)), Buffer.alloc(BS)]))]),
        'FRAME_UNEXPECTED',
      ],
      ['an unknown operation', Buffer.concat([hello(OWNER), frame(FrameType.POINTS_REQUEST, Buffer.from('090000', 'hex'))]), 'FRAME_MALFORMED'],
      ['a request with trailing bytes', Buffer.concat([hello(OWNER), frame(FrameType.POINTS_REQUEST, Buffer.from('01000000', 'hex'))]), 'FRAME_MALFORMED'],
      [
        'an oversized policy',
        Buffer.concat([hello(OWNER), frame(FrameType.POINTS_REQUEST, Buffer.concat([Buffer.from('020004', 'hex'), Buffer.alloc(1024, 0x61)]))]),
        'FRAME_MALFORMED',
      ],
      ['a policy that does not parse', Buffer.concat([hello(OWNER), setRet('keep everything forever')]), 'RETENTION_BAD'],
      ['a points query on the full-sync port', Buffer.concat([hello(OWNER), list]), 'WRONG_PORT', [SyncMode.FULLSYNC]],
      ['a POINTS_LIST sent to the receiver', Buffer.concat([hello(OWNER), frame(FrameType.POINTS_LIST, Buffer.alloc(8))]), 'FRAME_UNEXPECTED'],
    ]
    for (const [what, bytes, code, modes] of cases) {
      const {error} = await ask(bytes, modes)
      assert.equal(error?.code, code, what)
    }
    assert.ok((await fs.readFile(`${replica}.vdrep`)).equals(before), 'the replica state is unchanged')
  })

  it('a listing does not wait for the replica lock (a push holds it); setting retention is refused while it is held', async () => {
    const release = await acquireReplica(replica, 'the test (a push)')
    try {
      const {list: l, error} = await ask(Buffer.concat([hello(OWNER), list]))
      assert.equal(error, undefined, error?.message)
      assert.equal(l!.lastSeq, 3)
      const set = await ask(Buffer.concat([hello(OWNER), setRet('count:2')]))
      assert.equal(set.error?.code, 'LOCKED')
    } finally {
      release()
    }
    assert.equal((await readReplicaState(replica)).state?.retention, undefined)
  })
})
