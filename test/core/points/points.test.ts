// Restore points end to end on a local target (the same receiver, in-process): push N times
// with random writes, copy the source after each push, and every kept point reads back equal
// to its copy; merges (a middle point dropped) and drops keep that true; a full sync starts a
// new chain.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {push} from '../../../src/core/delta/push.js'
import {fullsync} from '../../../src/core/fullsync/client.js'
import {initDisk} from '../../../src/core/init.js'
import {scanDisk} from '../../../src/core/tracker/scan.js'
import {listPoints} from '../../../src/core/points/list.js'
import {openPoint} from '../../../src/core/points/point-reader.js'
import {loadChain} from '../../../src/core/points/chain.js'
import {keepOnly} from '../../../src/core/points/prune.js'
import {setRetention} from '../../../src/core/points/settings.js'
import {pointsDirFor} from '../../../src/core/points/store.js'
import {readReplicaState} from '../../../src/core/receiver/replica-state.js'
import {makeMixedDisk, seededBytes, tempDir} from '../../helpers/disks.js'

const BS = 64 * 1024
const SIZE = 8 << 20
const BLOCKS = SIZE / BS

/** Random writes: whole blocks, partial blocks, zeroed blocks; seeded. */
async function scribble(disk: string, round: number): Promise<void> {
  const rnd = seededBytes(`points:${round}`, 256)
  const fh = await fs.open(disk, 'r+')
  try {
    for (let i = 0; i < 12; i++) {
      const block = rnd.readUInt16LE(i * 2) % BLOCKS
      const kind = rnd[100 + i] % 3
      if (kind === 0) await fh.write(seededBytes(`w:${round}:${i}`, BS), 0, BS, block * BS)
      else if (kind === 1) await fh.write(seededBytes(`p:${round}:${i}`, 1000), 0, 1000, block * BS + 777)
      else await fh.write(Buffer.alloc(BS * 2), 0, Math.min(BS * 2, SIZE - block * BS), block * BS)
    }
  } finally {
    await fh.close()
  }
}

/** The whole point, read in odd-sized pieces that cross block and segment edges. */
async function readPoint(replica: string, seq: number): Promise<Buffer> {
  const r = await openPoint(replica, seq)
  try {
    const parts: Buffer[] = []
    for (let off = 0, i = 0; off < r.size; i++) {
      const len = [4096, 100_000, 65_536, 1, 300_001][i % 5]
      const b = await r.read(off, len)
      parts.push(b)
      off += b.length
    }
    return Buffer.concat(parts)
  } finally {
    await r.close()
  }
}

describe('restore points on a local target', function () {
  this.timeout(120_000)
  let dir: string
  let disk: string
  let replica: string
  const copies = new Map<number, Buffer>()

  before(async () => {
    dir = await tempDir('vdrep-points-')
    disk = path.join(dir, 'src', 'd.img')
    replica = path.join(dir, 'dst', 'd.img')
    await fs.mkdir(path.dirname(disk))
    await fs.mkdir(path.dirname(replica))
    await makeMixedDisk(disk, SIZE, 'points', 256 * 1024)
    await initDisk(disk, {target: replica, rpoSeconds: 3600, blockSize: BS})
    await fullsync(disk, {})
    await setRetention(replica, 'count:1000')
    const {state} = await readReplicaState(replica)
    copies.set(state!.lastSeq, await fs.readFile(disk))
    for (let round = 1; round <= 8; round++) {
      await scribble(disk, round)
      await scanDisk(disk, {})
      const r = await push(disk, {})
      assert.equal(r.mode, 'delta')
      const {state: s} = await readReplicaState(replica)
      copies.set(s!.lastSeq, await fs.readFile(disk))
    }
  })
  after(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('keeps every commit as a point, and each reads back equal to the source as it was at that push', async () => {
    const l = await listPoints(replica)
    assert.deepEqual(
      l.points.map((p) => p.seq),
      [...copies.keys()].sort((a, b) => b - a),
    )
    assert.ok(l.points.slice(1).every((p) => p.bytes > 0 && !p.current))
    for (const p of l.points) assert.ok((await readPoint(replica, p.seq)).equals(copies.get(p.seq)!), `point ${p.seq} differs from the copy taken at that push`)
  })

  it('stores zero pre-images as runs, not data (sparse-aware)', async () => {
    const {state} = await readReplicaState(replica)
    const chain = await loadChain(replica, state!)
    try {
      const zeroRuns = chain.files.flatMap((f) => f.extents).filter((e) => e.kind === 2).length
      assert.ok(zeroRuns > 0, 'no zero run in any record: zero pre-images were stored as data')
    } finally {
      for (const f of chain.files) await f.close()
    }
  })

  it('dropping middle points merges their records; every kept point still reads equal', async () => {
    const {state} = await readReplicaState(replica)
    const seqs = [...copies.keys()].sort((a, b) => a - b)
    const keep = new Set([seqs[1], seqs[2], seqs[5], seqs[seqs.length - 1]])
    const chain = await loadChain(replica, state!)
    const r = await keepOnly(replica, chain, keep)
    for (const f of chain.files) await f.close()
    assert.ok(r.merged >= 1)
    assert.deepEqual(
      r.dropped,
      seqs.filter((s) => !keep.has(s)),
    )
    const l = await listPoints(replica)
    assert.deepEqual(
      l.points.map((p) => p.seq).sort((a, b) => a - b),
      [...keep].sort((a, b) => a - b),
    )
    for (const s of keep) assert.ok((await readPoint(replica, s)).equals(copies.get(s)!), `point ${s} differs after the merge`)
    await assert.rejects(openPoint(replica, seqs[0]), (e: Error & {code?: string}) => e.code === 'POINT_GONE')
    await assert.rejects(openPoint(replica, seqs[3]), (e: Error & {code?: string}) => e.code === 'POINT_GONE')
  })

  it('retention by count drops the oldest only, and a reader opened before keeps reading its point while pushes commit', async () => {
    const before = (await listPoints(replica)).points.map((p) => p.seq)
    const oldest = before[before.length - 1]
    const reader = await openPoint(replica, before[1])
    const want = copies.get(before[1])!
    await setRetention(replica, 'count:3')
    assert.deepEqual(
      (await listPoints(replica)).points.map((p) => p.seq),
      before.slice(0, 3),
    )
    // New commits while the reader is open: its view does not move.
    for (let round = 20; round < 22; round++) {
      await scribble(disk, round)
      await scanDisk(disk, {})
      await push(disk, {})
      const {state} = await readReplicaState(replica)
      copies.set(state!.lastSeq, await fs.readFile(disk))
    }
    const got = Buffer.concat([await reader.read(0, SIZE / 2), await reader.read(SIZE / 2, SIZE)])
    await reader.close()
    assert.ok(got.equals(want), 'an open reader saw the replica move under it')
    assert.ok(!(await listPoints(replica)).points.some((p) => p.seq === oldest))
  })

  it('a full sync starts a new chain: older points are dropped, the state says so', async () => {
    await fs.writeFile(`${disk}.extra`, 'x')
    const before = (await readReplicaState(replica)).state!.pointsChain
    assert.ok(before)
    const r = await fullsync(disk, {})
    assert.ok(r)
    const l = await listPoints(replica)
    assert.equal(l.points.length, 1, 'points of the old chain survived a full sync')
    const {state} = await readReplicaState(replica)
    assert.match(state!.pointsChain ?? '', /^[0-9a-f]{32}$/, 'the completed full sync names the new chain')
    assert.notEqual(state!.pointsChain, before, 'a new chain, not the old one')
    assert.deepEqual(
      (await fs.readdir(pointsDirFor(replica))).filter((n) => n.endsWith('.vdu')),
      [],
    )
    assert.equal(state!.retention, 'count:3', 'the policy outlives the full sync')
  })
})
