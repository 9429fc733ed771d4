// `vdrep replicas --root DIR` on a root holding replicas in every state a receiver leaves:
// replicating with restore points (real pushes), incomplete (a full sync that did not finish),
// diverged (written outside vdrep after its last commit), promoted and testing (fields other
// commands add to the state), an unreadable state file. Each row says what it is, the
// unreadable one does not hide the others, and the listing takes no lock: it answers while a
// push holds the replica.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fullsync} from '../../src/core/fullsync/client.js'
import {push} from '../../src/core/delta/push.js'
import {initDisk} from '../../src/core/init.js'
import {acquireReplica} from '../../src/core/locks/index.js'
import {readReplicaState, statePathFor, writeReplicaState} from '../../src/core/receiver/replica-state.js'
import {scanDisk} from '../../src/core/tracker/scan.js'
import type {ReplicaRow, ReplicasResult} from '../../src/core/replicas/replicas.js'
import type {ChildProcess} from 'node:child_process'
import {collect, json, startVdrep, vdrep} from '../helpers/cli.js'
import {exists} from '../helpers/cycle.js'
import {makeMixedDisk, seededBytes, tempDir} from '../helpers/disks.js'

const MiB = 1 << 20
const BS = 64 * 1024

describe('vdrep replicas --root (replica host)', function () {
  this.timeout(120_000)
  let dir: string
  let root: string

  async function synced(name: string, pushes: number): Promise<{disk: string; replica: string}> {
    const disk = path.join(dir, 'src', `${name}.img`)
    const replica = path.join(root, 'group', `${name}.img`)
    await makeMixedDisk(disk, 4 * MiB, name)
    await initDisk(disk, {target: replica, rpoSeconds: 3600, blockSize: BS})
    await fullsync(disk, {})
    for (let i = 0; i < pushes; i++) {
      const fh = await fs.open(disk, 'r+')
      await fh.write(seededBytes(`${name}${i}`, BS), 0, BS, (i * 5 + 1) * BS)
      await fh.close()
      await scanDisk(disk, {})
      const r = await push(disk, {})
      assert.equal(r.mode, 'delta', r.reason)
    }
    return {disk, replica}
  }

  let ok: string
  let tst: string
  let testChild: ChildProcess | undefined
  let testDone: Promise<unknown> | undefined
  before(async () => {
    dir = await tempDir('vdrep-replicas-')
    root = path.join(dir, 'root')
    await fs.mkdir(path.join(dir, 'src'), {recursive: true})
    await fs.mkdir(path.join(root, 'group'), {recursive: true})
    ok = (await synced('ok', 2)).replica
    const inc = (await synced('incomplete', 0)).replica
    const {state} = await readReplicaState(inc)
    await writeReplicaState(inc, {...state!, complete: false, resumeBlock: 3}) // what an interrupted full sync leaves
    const div = (await synced('diverged', 1)).replica
    await fs.appendFile(div, Buffer.alloc(4096, 1)) // a write outside vdrep
    const pro = (await synced('promoted', 0)).replica
    const ps = (await readReplicaState(pro)).state!
    // What a failover records (doc/failover.md), as vdrep failover writes it
    await writeReplicaState(pro, {
      ...ps,
      promoted: {
        epoch: 1,
        atSeq: ps.lastSeq,
        ms: Date.now(),
        oldReplicaId: ps.replicaId,
        newReplicaId: 'ab'.repeat(16),
        planned: true,
        lossWindowMs: 0,
        rollbackDone: true,
      },
    })
    tst = (await synced('testing', 0)).replica
    // A real test of its newest point, running until after() stops it.
    testChild = startVdrep(['test', 'start', tst, '--nbd', `unix:${path.join(dir, 'test.nbd')}`])
    testDone = collect(testChild)
    let err = ''
    testChild.stderr!.on('data', (d: Buffer) => (err += d.toString()))
    for (let i = 0; i < 300 && !(await exists(path.join(dir, 'test.nbd'))); i++) {
      if (testChild.exitCode !== null) assert.fail(`vdrep test start exited ${testChild.exitCode}: ${err}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    await fs.writeFile(path.join(root, 'junk.img'), 'x')
    await fs.writeFile(statePathFor(path.join(root, 'junk.img')), 'not a vdrep state')
  })
  after(async () => {
    if (testChild && testChild.exitCode === null) {
      await vdrep(['test', 'stop', tst])
      await testDone
    }
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('lists every replica with its state, last commit, points and space (--json)', async () => {
    const r = await vdrep(['replicas', '--root', root, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<ReplicasResult>(r)
    const by = new Map<string, ReplicaRow>(out.replicas.map((x) => [x.name, x]))
    assert.deepEqual([...by.keys()].sort(), [
      'group/diverged.img',
      'group/incomplete.img',
      'group/ok.img',
      'group/promoted.img',
      'group/testing.img',
      'junk.img',
    ])
    const good = by.get('group/ok.img')!
    assert.equal(good.state, 'replicating')
    assert.equal(good.complete, true)
    assert.equal(good.lastSeq, 2)
    assert.ok(good.ageSeconds !== null && good.ageSeconds < 600)
    assert.equal(good.points?.count, 3)
    assert.equal(good.points?.oldestSeq, 0)
    assert.ok((good.points?.bytes ?? 0) > 0)
    assert.ok(good.space.points > 0 && good.space.replica > 0)
    assert.equal(good.space.total, good.space.replica + good.space.points + good.space.journal)
    assert.equal(good.replicaId, (await readReplicaState(ok)).state!.replicaId)
    // What the source said after its full sync (this host, the disk, its RPO)
    assert.deepEqual(good.source, {host: os.hostname(), disk: path.join(dir, 'src', 'ok.img')})
    assert.equal(good.rpoSeconds, 3600)
    assert.equal(good.rpoViolated, false)
    assert.equal(by.get('group/incomplete.img')!.state, 'incomplete')
    assert.equal(by.get('group/incomplete.img')!.lastCommit, null)
    assert.equal(by.get('group/diverged.img')!.state, 'diverged')
    assert.equal(by.get('group/promoted.img')!.state, 'promoted')
    assert.equal(by.get('group/testing.img')!.state, 'testing')
    assert.equal(by.get('junk.img')!.state, 'unreadable')
  })

  it('prints one row per replica and why each is not replicating', async () => {
    const r = await vdrep(['replicas', '--root', root])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /REPLICA\s+STATE\s+LAST COMMIT\s+POINTS\s+SPACE\s+SOURCE/)
    assert.match(r.stdout, /group\/ok\.img\s+replicating\s+seq 2 /)
    assert.match(r.stdout, /group\/diverged\.img: diverged: changed outside vdrep/)
    assert.match(r.stdout, /group\/incomplete\.img: incomplete:/)
    assert.match(r.stdout, /junk\.img: unreadable:/)
  })

  it('takes no lock: it answers while a push holds a replica, and leaves nothing behind', async () => {
    const release = await acquireReplica(ok, 'the test (a push)')
    const before = (await fs.readdir(path.join(root, 'group'))).sort()
    try {
      const r = await vdrep(['replicas', '--root', root, '--json'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(json<ReplicasResult>(r).replicas.find((x) => x.name === 'group/ok.img')?.state, 'replicating')
    } finally {
      release()
    }
    assert.deepEqual((await fs.readdir(path.join(root, 'group'))).sort(), before)
  })

  it('vdrep points <disk> over a local target (the in-process receiver) lists what the replica host lists', async () => {
    const disk = path.join(dir, 'src', 'ok.img')
    const fromClient = await vdrep(['points', disk, '--json'])
    assert.equal(fromClient.code, 0, fromClient.stderr)
    const onHost = await vdrep(['points', ok, '--json'])
    assert.equal(onHost.code, 0, onHost.stderr)
    const a = json<{points: unknown[]; disk?: string; replica: string}>(fromClient)
    assert.equal(a.disk, disk)
    assert.equal(a.points.length, 3)
    assert.deepEqual(a.points, json<{points: unknown[]}>(onHost).points)
  })

  it('a root that is not a folder is a usage error (exit 2)', async () => {
    const r = await vdrep(['replicas', '--root', path.join(dir, 'nope')])
    assert.equal(r.code, 2, r.stderr)
  })
})
