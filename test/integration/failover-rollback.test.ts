// `failover --at`: the replica rolled back in place to a kept point, exactly (cmp against a copy
// of the disk taken at that push), the undone blocks marked in the promoted record and shipped
// by the reprotect; a kill -9 in the middle of the rollback leaves a fenced replica with no
// record (nothing can track or push it) that a second run finishes. And the reprotect's
// refusals: an untrusted old record is overwritten only with --discard-divergent.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {collect, json, startVdrep, vdrep} from '../helpers/cli.js'
import {filesEqual, makeMixedDisk, scribbleBlocks, tempDir} from '../helpers/disks.js'
import {sha256, sleep, waitFor} from '../helpers/cycle.js'
import {bitmapBlocks, sorted, startTracker} from '../core/tracker/tracker-helpers.js'
import {readReplicaState} from '../../src/core/receiver/replica-state.js'
import type {FailoverResult} from '../../src/core/failover/failover.js'
import type {ReprotectResult} from '../../src/core/failover/reprotect.js'

const MiB = 1 << 20
const BS = 64 * 1024

describe('failover --at and reprotect refusals (local targets)', function () {
  this.timeout(180_000)
  let dir: string
  let disk: string
  let replica: string
  /** The disk as it was at push 1 (point 1). */
  let copy1: string
  let changedAfter1: number[]

  async function setup(size: number, blocksPerPush: number): Promise<void> {
    dir = await tempDir()
    disk = path.join(dir, 'p', 'vm.img')
    replica = path.join(dir, 'r', 'vm.img')
    copy1 = path.join(dir, 'copy1.img')
    await fs.mkdir(path.dirname(disk))
    await fs.mkdir(path.dirname(replica))
    await makeMixedDisk(disk, size, 'rb')
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    // Every point kept, whatever its size (the default caps the bytes at 10% of the disk).
    assert.equal((await vdrep(['points', replica, '--retention', 'count:50'])).code, 0)
    await scribbleBlocks(disk, BS, 4, 'push1')
    assert.equal((await vdrep(['push', disk])).code, 0)
    await fs.copyFile(disk, copy1)
    const a = await scribbleBlocks(disk, BS, blocksPerPush, 'push2')
    assert.equal((await vdrep(['push', disk])).code, 0)
    const b = await scribbleBlocks(disk, BS, blocksPerPush, 'push3')
    assert.equal((await vdrep(['push', disk])).code, 0)
    changedAfter1 = sorted([...a, ...b])
  }
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('rolls back exactly to the point, marks the undone blocks, and the reprotect ships them', async () => {
    await setup(16 * MiB, 8)
    const fo = await vdrep(['failover', replica, '--at', '1', '--force', '--json'])
    assert.equal(fo.code, 0, fo.stderr)
    const r = json<FailoverResult>(fo)
    assert.equal(r.rolledBackTo, 1)
    assert.ok(await filesEqual(replica, copy1), 'the replica is the disk as it was at push 1')
    assert.deepEqual(await bitmapBlocks(replica), changedAfter1, 'the promoted record marks exactly the undone blocks')
    assert.equal(r.undoneBlocks, changedAfter1.length)
    const rp = await vdrep(['reprotect', replica, '--to', disk, '--json'])
    assert.equal(rp.code, 0, rp.stderr)
    const out = json<ReprotectResult>(rp)
    assert.equal(out.push.mode, 'delta')
    assert.equal(out.owedBlocks, 0)
    assert.equal(out.push.blocks, changedAfter1.length, 'exactly the undone blocks')
    assert.ok(await filesEqual(disk, copy1), 'the old primary is back at point 1 too')
  })

  it('kill -9 during the rollback: fenced, no record, the points unreadable; a second run finishes it exactly', async () => {
    await setup(64 * MiB, 400)
    const child = startVdrep(['failover', replica, '--at', '1', '--force', '--verbose'])
    let err = ''
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
    const done = collect(child)
    await waitFor('the rollback to start', () => /rolling .* back to point 1/.test(err) || child.exitCode !== null, 30_000, 2)
    await sleep(Math.floor(Math.random() * 15))
    child.kill('SIGKILL')
    await done
    const s = (await readReplicaState(replica)).state
    assert.ok(s?.promoted, `the promotion is recorded before the first rollback write: ${err}`)
    if (!s.promoted.rollbackDone) {
      await assert.rejects(fs.stat(`${replica}.psf`), 'no record: nothing can track or push the half-rolled-back disk')
      const track = await vdrep(['track', replica, '--nbd', `unix:${path.join(dir, 'x.nbd')}`])
      assert.notEqual(track.code, 0)
    }
    const push = await vdrep(['push', disk])
    assert.equal(push.code, 12, push.stderr)
    const again = await vdrep(['failover', replica, '--at', '1', '--force', '--json'])
    assert.equal(again.code, 0, again.stderr)
    assert.ok(await filesEqual(replica, copy1), 'the resumed rollback ends exactly at point 1')
    assert.deepEqual(await bitmapBlocks(replica), s.promoted.rollbackDone ? await bitmapBlocks(replica) : changedAfter1)
    assert.equal((await readReplicaState(replica)).state?.promoted?.rollbackDone, true)
  })

  it('an old record that cannot be trusted: refused (DIVERGENT_UNKNOWN), nothing written; --discard-divergent runs a full sync of differences', async () => {
    await setup(16 * MiB, 4)
    const restored = path.join(dir, 'old.psf')
    await fs.copyFile(`${disk}.psf`, restored)
    await scribbleBlocks(disk, BS, 2, 'push4')
    assert.equal((await vdrep(['push', disk])).code, 0)
    assert.equal((await vdrep(['push', disk, '--final'])).code, 0)
    assert.equal((await vdrep(['failover', replica, '--planned', '--to', disk])).code, 0)
    await fs.copyFile(restored, `${disk}.psf`) // a record restored from an older copy: off the chain
    const before = await sha256(disk)
    await scribbleBlocks(replica, BS, 3, 'dr')
    const no = await vdrep(['reprotect', replica])
    assert.equal(no.code, 2, no.stderr)
    assert.match(no.stderr, /cannot be trusted/)
    assert.match(no.stderr, /--discard-divergent/)
    assert.equal(await sha256(disk), before, 'nothing written')
    await assert.rejects(fs.stat(`${disk}.vdrep`))
    const yes = await vdrep(['reprotect', replica, '--discard-divergent', '--json'])
    assert.equal(yes.code, 0, yes.stderr)
    const out = json<ReprotectResult>(yes)
    assert.match(out.fullSyncReason ?? '', /last commit/)
    assert.ok(out.push.bytesSent < 8 * MiB, 'only differences travel')
    assert.ok(await filesEqual(disk, replica))
  })

  it('a tracker running on the old primary: refused (exit 3), nothing written', async () => {
    await setup(16 * MiB, 4)
    assert.equal((await vdrep(['failover', replica, '--force', '--to', disk])).code, 0)
    const t = await startTracker(disk, ['--nbd', `unix:${path.join(dir, 'p.nbd')}`])
    try {
      const before = await sha256(disk)
      const r = await vdrep(['reprotect', replica])
      assert.equal(r.code, 3, r.stderr)
      assert.match(r.stderr, /tracker runs/)
      assert.equal(await sha256(disk), before)
      await assert.rejects(fs.stat(`${disk}.vdrep`))
    } finally {
      await t.stop('SIGTERM')
    }
    const r = await vdrep(['reprotect', replica])
    assert.equal(r.code, 0, r.stderr)
    assert.ok(await filesEqual(disk, replica))
  })
})
