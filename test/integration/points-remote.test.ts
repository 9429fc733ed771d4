// `vdrep points <disk>` on the protected host, over a real sshd to a real `vdrep serve`: the
// listing equals the one taken on the replica host, --retention set from the client is recorded
// in the replica's state by the receiver, another disk pointed at the replica learns nothing of
// its points (exit 10), and hostile query frames sent straight to serve's port are refused
// while serve goes on answering.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {json} from '../helpers/cli.js'
import {MiB, qemuIo, SshCycle, type SshDisk} from '../helpers/cycle.js'
import {makeMixedDisk} from '../helpers/disks.js'
import {readReplicaState} from '../../src/core/receiver/replica-state.js'
import {decodeFrameHeader, encodeFrameHeader, FRAME_HEADER_SIZE, FrameType, PROTOCOL_VERSION, type FrameTypeId} from '../../src/core/protocol/frame.js'
import {decodeError, encodeHello, SyncMode} from '../../src/core/protocol/messages.js'
import {HashAlgo} from '../../src/core/hash/block-hash.js'
import type {PointsResult} from '../../src/commands/points.js'

function frame(type: FrameTypeId, payload: Buffer): Buffer {
  return Buffer.concat([encodeFrameHeader(type, payload.length), payload])
}

/** Send raw bytes to a port, return the first frame back (type and payload). */
async function rawAsk(port: number, bytes: Buffer): Promise<{type: number; payload: Buffer}> {
  const sock = net.connect(port, '127.0.0.1')
  const chunks: Buffer[] = []
  await new Promise<void>((resolve, reject) => {
    sock.on('data', (d: Buffer) => chunks.push(d))
    sock.on('close', () => resolve())
    sock.on('error', reject)
    sock.write(bytes)
  })
  const all = Buffer.concat(chunks)
  const h = decodeFrameHeader(all)
  return {type: h.type, payload: all.subarray(FRAME_HEADER_SIZE, FRAME_HEADER_SIZE + h.length)}
}

describe('vdrep points <disk> from the protected host (real sshd, vdrep serve)', function () {
  this.timeout(180_000)
  let c: SshCycle
  let d: SshDisk

  before(async () => {
    c = await SshCycle.start()
    d = await c.newDisk('pts', 8 * MiB)
    const t = await c.track(d)
    for (const [i, at] of [
      [1, 0],
      [2, 3 * MiB],
    ] as const) {
      await qemuIo(d.uri, [`write -P 0x${i}${i} ${at} 200000`, 'flush'])
      const p = await c.vdrep(['push', d.disk, '--json'])
      assert.equal(p.code, 0, p.stderr)
      assert.equal(json<{mode: string}>(p).mode, 'delta')
    }
    await c.untrack(t)
  })
  after(async () => {
    await c?.stop()
  })

  it('lists the same points, times and bytes as vdrep points on the replica host', async () => {
    const remote = await c.vdrep(['points', d.disk, '--json'])
    assert.equal(remote.code, 0, remote.stderr)
    const local = await c.vdrep(['points', d.replica, '--json'])
    assert.equal(local.code, 0, local.stderr)
    const r = json<PointsResult>(remote)
    const l = json<PointsResult>(local)
    assert.equal(r.disk, d.disk)
    assert.deepEqual(
      r.points.map((p) => [p.seq, p.current]),
      [
        [2, true],
        [1, false],
        [0, false],
      ],
    )
    assert.deepEqual(r.points, l.points)
    assert.equal(r.totalBytes, l.totalBytes)
    assert.ok(r.totalBytes > 0)
    assert.equal(r.retention, l.retention)
    const text = await c.vdrep(['points', d.disk])
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /SEQ\s+TIME\s+KEPT\s+TESTED/)
    assert.match(text.stdout, /3 point\(s\)/)
  })

  it('--retention from the client is recorded in the replica state by the receiver and applied at once', async () => {
    const r = await c.vdrep(['points', d.disk, '--retention', 'count:2', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<PointsResult>(r)
    assert.deepEqual(out.dropped, [0])
    assert.deepEqual(
      out.points.map((p) => p.seq),
      [2, 1],
    )
    assert.equal((await readReplicaState(d.replica)).state?.retention, 'count:2')
    const bad = await c.vdrep(['points', d.disk, '--retention', 'forever'])
    assert.equal(bad.code, 2, bad.stderr)
    assert.equal((await readReplicaState(d.replica)).state?.retention, 'count:2')
  })

  it('a disk of another source pointed at the replica is refused (exit 10) and sees none of its points', async () => {
    const other = path.join(c.dir, 'other.img')
    await makeMixedDisk(other, 8 * MiB, 'other')
    const i = await c.init(other, d.replica)
    assert.equal(i.code, 0, i.stderr)
    const r = await c.vdrep(['points', other, '--json'])
    assert.equal(r.code, 10, `${r.stdout}\n${r.stderr}`)
    assert.match(r.stdout + r.stderr, /REPLICA_FOREIGN|another source/)
    assert.doesNotMatch(r.stdout, /"seq"/)
    await fs.rm(other, {force: true})
  })

  it('init --retention reaches the replica host with the first full sync, and never overrides a policy set since', async () => {
    const disk = path.join(c.dir, 'ret.img')
    const replica = path.join(c.root, 'ret.img')
    await makeMixedDisk(disk, 4 * MiB, 'ret')
    const bad = await c.init(disk, replica, ['--retention', 'always'])
    assert.equal(bad.code, 2, bad.stderr)
    const i = await c.init(disk, replica, ['--retention', 'count:3'])
    assert.equal(i.code, 0, i.stderr)
    const f = await c.vdrep(['fullsync', disk])
    assert.equal(f.code, 0, f.stderr)
    let s = (await readReplicaState(replica)).state!
    assert.equal(s.retention, 'count:3')
    assert.deepEqual(s.source, {host: os.hostname(), disk})
    const set = await c.vdrep(['points', disk, '--retention', 'count:7'])
    assert.equal(set.code, 0, set.stderr)
    const again = await c.vdrep(['fullsync', disk])
    assert.equal(again.code, 0, again.stderr)
    s = (await readReplicaState(replica)).state!
    assert.equal(s.retention, 'count:7')
  })

  it('hostile query frames sent to the delta port are refused; serve keeps answering', async () => {
    const h = (replicaId: Buffer) =>
      frame(
        FrameType.HELLO,
        encodeHello({
          version: PROTOCOL_VERSION,
          mode: SyncMode.POINTS,
          hashAlgo: HashAlgo.XXH3,
          blockSize: 64 * 1024,
          diskSize: 8 * MiB,
          replicaId,
          flags: 0,
          lastCommit: Buffer.alloc(16),
          nextCommit: Buffer.alloc(16),
          path: d.replica,
        }),
      )
    const {state} = await readReplicaState(d.replica)
    const owner = Buffer.from(state!.replicaId, 'hex')
    const port = c.serve.ports[1]
    for (const [what, bytes, code] of [
      ['unknown op', Buffer.concat([h(owner), frame(FrameType.POINTS_REQUEST, Buffer.from('ff0000', 'hex'))]), 'FRAME_MALFORMED'],
      ['a length past the payload', Buffer.concat([h(owner), frame(FrameType.POINTS_REQUEST, Buffer.from('02ff00', 'hex'))]), 'FRAME_MALFORMED'],
      [
        'a path out of the root',
        Buffer.concat([
          h(owner).subarray(0, 0),
          frame(
            FrameType.HELLO,
            encodeHello({
              version: PROTOCOL_VERSION,
              mode: SyncMode.POINTS,
              hashAlgo: HashAlgo.XXH3,
              blockSize: 65536,
              diskSize: MiB,
              replicaId: owner,
              flags: 0,
              lastCommit: Buffer.alloc(16),
              nextCommit: Buffer.alloc(16),
              path: '/etc/passwd',
            }),
          ),
          frame(FrameType.POINTS_REQUEST, Buffer.from('010000', 'hex')),
        ]),
        'PATH_OUTSIDE_ROOT',
      ],
      ['another replica id', Buffer.concat([h(Buffer.alloc(16, 9)), frame(FrameType.POINTS_REQUEST, Buffer.from('010000', 'hex'))]), 'REPLICA_FOREIGN'],
    ] as const) {
      const got = await rawAsk(port, bytes)
      assert.equal(got.type, FrameType.ERROR, what)
      assert.equal(decodeError(got.payload).code, code, what)
    }
    const again = await c.vdrep(['points', d.disk, '--json'])
    assert.equal(again.code, 0, again.stderr)
    assert.equal((await readReplicaState(d.replica)).state?.retention, 'count:2')
  })
})
