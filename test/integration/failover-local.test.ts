// Failover and failback by delta with local-path targets (the receiver in-process, the same
// framed protocol): the fence refuses the old source whatever its flags, the round trip both
// ways ends equal, shipping only the union of what changed on either side, and the old
// primary's own writes survive as a restore point.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, vdrep} from '../helpers/cli.js'
import {filesEqual, makeMixedDisk, scribbleBlocks, tempDir} from '../helpers/disks.js'
import {sha256} from '../helpers/cycle.js'
import {readReplicaState} from '../../src/core/receiver/replica-state.js'
import {openPoint} from '../../src/core/points/point-reader.js'
import type {PushResult} from '../../src/core/delta/push.js'
import type {FailoverResult} from '../../src/core/failover/failover.js'
import type {ReprotectResult} from '../../src/core/failover/reprotect.js'

const MiB = 1 << 20
const BS = 64 * 1024

describe('failover and reprotect (local targets)', function () {
  this.timeout(180_000)
  let dir: string
  let disk: string
  let replica: string

  beforeEach(async () => {
    dir = await tempDir()
    disk = path.join(dir, 'p', 'vm.img')
    replica = path.join(dir, 'r', 'vm.img')
    await fs.mkdir(path.dirname(disk))
    await fs.mkdir(path.dirname(replica))
    await makeMixedDisk(disk, 16 * MiB, 'fo')
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    await scribbleBlocks(disk, BS, 5, 'before')
    assert.equal((await vdrep(['push', disk])).code, 0)
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('refuses an unplanned failover without --force (saying how much may be lost), --planned without a final push; both change nothing', async () => {
    const before = await fs.readFile(`${replica}.vdrep`)
    const un = await vdrep(['failover', replica])
    assert.equal(un.code, 2, un.stderr)
    assert.match(un.stderr, /writes of the last \d+ s may not be here/)
    const pl = await vdrep(['failover', replica, '--planned'])
    assert.equal(pl.code, 2, pl.stderr)
    assert.match(pl.stderr, /not a final push/)
    assert.match(pl.stderr, /push <disk> --final/)
    assert.ok((await fs.readFile(`${replica}.vdrep`)).equals(before))
    await assert.rejects(fs.stat(`${replica}.psf`))
  })

  it('fences the old source: push and fullsync, with --take-over-replica or --discard-replica-changes, exit 12 and the promoted disk is unchanged', async () => {
    const fin = await vdrep(['push', disk, '--final'])
    assert.equal(fin.code, 0, fin.stderr)
    assert.match(fin.stdout, /final: handed over/)
    assert.match((await vdrep(['status', disk])).stdout, /Handed over/)
    const fo = await vdrep(['failover', replica, '--planned', '--json'])
    assert.equal(fo.code, 0, fo.stderr)
    const r = json<FailoverResult>(fo)
    assert.equal(r.planned, true)
    assert.equal(r.lossWindowSeconds, 0)
    const sum = await sha256(replica)
    const st = await fs.readFile(`${replica}.vdrep`)
    await scribbleBlocks(disk, BS, 3, 'after-failover')
    for (const args of [
      ['push', disk],
      ['push', disk, '--take-over-replica'],
      ['push', disk, '--discard-replica-changes'],
      ['fullsync', disk],
      ['fullsync', disk, '--take-over-replica', '--discard-replica-changes'],
    ]) {
      const x = await vdrep(args)
      assert.equal(x.code, 12, `${args.join(' ')}: ${x.stderr}`)
      assert.match(x.stderr, /promoted by a failover/)
      assert.match(x.stderr, /vdrep reprotect/)
    }
    assert.equal(await sha256(replica), sum, 'the promoted disk is byte-unchanged')
    assert.ok((await fs.readFile(`${replica}.vdrep`)).equals(st))
    const status = await vdrep(['status', disk, '--check'])
    assert.equal(status.code, 12, status.stdout + status.stderr)
    assert.match((await vdrep(['status', disk])).stdout, /Fenced/)
    // On the replica host the promoted disk shows as such.
    assert.match((await vdrep(['status', replica])).stdout, /promoted by a failover .*epoch 1/)
    // The restore points of a promoted disk are not readable: it is a source now.
    assert.match((await vdrep(['points', replica])).stdout, /promoted by a failover/)
  })

  it("a round trip primary -> DR -> primary: writes on both sides, only their union shipped, the old primary's writes kept as a point", async () => {
    assert.equal((await vdrep(['push', disk, '--final'])).code, 0)
    assert.equal((await vdrep(['failover', replica, '--planned', '--to', disk])).code, 0)
    // Writes on the promoted side (no tracker: the push checks locally) and on the old primary after the failover.
    const drBlocks = await scribbleBlocks(replica, BS, 6, 'dr-writes')
    const oldBlocks = await scribbleBlocks(disk, BS, 4, 'old-primary-after')
    const oldCopy = path.join(dir, 'old-copy.img')
    await fs.copyFile(disk, oldCopy)
    const rp = await vdrep(['reprotect', replica, '--json'])
    assert.equal(rp.code, 0, rp.stderr)
    const out = json<ReprotectResult>(rp)
    assert.equal(out.push.mode, 'delta')
    assert.equal(out.owedBlocks, oldBlocks.length)
    const union = new Set([...drBlocks, ...oldBlocks]).size
    assert.equal(out.push.blocks, union, 'exactly the union of both sides')
    assert.ok(out.push.bytesSent <= 1.1 * union * BS, `${out.push.bytesSent} bytes for ${union} blocks`)
    assert.ok(await filesEqual(disk, replica), 'the old primary equals the promoted disk')
    await assert.rejects(fs.stat(`${disk}.psf`), 'the old record left its place')
    await fs.stat(`${disk}.psf.demoted`)
    // The old primary's own writes are its restore point just before the first push.
    const s = (await readReplicaState(disk)).state
    assert.ok(s)
    const pt = await openPoint(disk, s.lastSeq - 1)
    try {
      assert.ok((await pt.read(0, 16 * MiB)).equals(await fs.readFile(oldCopy)), 'point = the old primary as it was')
    } finally {
      await pt.close()
    }
    // More writes on the promoted side: plain deltas.
    const more = await scribbleBlocks(replica, BS, 2, 'dr-more')
    const p2 = json<PushResult>(await vdrep(['push', replica, '--json', '--no-fallback']))
    assert.equal(p2.mode, 'delta')
    assert.equal(p2.blocks, more.length)
    assert.ok(await filesEqual(disk, replica))

    // And back: a planned failover to the first direction, then reprotect.
    assert.equal((await vdrep(['push', replica, '--final'])).code, 0)
    const back = await vdrep(['failover', disk, '--planned', '--to', replica])
    assert.equal(back.code, 0, back.stderr)
    const pBlocks = await scribbleBlocks(disk, BS, 3, 'primary-again')
    const rp2 = json<ReprotectResult>(await vdrep(['reprotect', disk, '--json']))
    assert.equal(rp2.push.mode, 'delta')
    assert.equal(rp2.owedBlocks, 0, 'a planned failover leaves nothing owed')
    assert.equal(rp2.push.blocks, pBlocks.length)
    assert.ok(await filesEqual(disk, replica))
    const p3 = json<PushResult>(await vdrep(['push', disk, '--json', '--no-fallback']))
    assert.equal(p3.mode, 'delta')
    assert.equal(p3.blocks, 0)
    // The old first direction's replica state is back: the DR copy is a replica again, not promoted.
    assert.equal((await readReplicaState(replica)).state?.promoted, undefined)
  })
  it('a source disk (one with its own .psf) is never overwritten as a replica: exit 10, unless handed over', async () => {
    const other = path.join(dir, 'other.img')
    await makeMixedDisk(other, 16 * MiB, 'other')
    assert.equal((await vdrep(['init', other, '--to', disk])).code, 0)
    const before = await sha256(disk)
    const r = await vdrep(['fullsync', other])
    assert.equal(r.code, 10, r.stderr)
    assert.match(r.stderr, /is a source disk/)
    assert.equal(await sha256(disk), before)
    await assert.rejects(fs.stat(`${disk}.vdrep`))
  })
  it('reprotect to a disk that is not the old source is refused, nothing changed; a second reprotect only pushes', async () => {
    assert.equal((await vdrep(['push', disk, '--final'])).code, 0)
    assert.equal((await vdrep(['failover', replica, '--planned'])).code, 0)
    const other = path.join(dir, 'p', 'other.img')
    await makeMixedDisk(other, 16 * MiB, 'other')
    assert.equal((await vdrep(['init', other, '--to', path.join(dir, 'r', 'other.img')])).code, 0)
    const before = await sha256(other)
    const wrong = await vdrep(['reprotect', replica, '--to', other])
    assert.equal(wrong.code, 2, wrong.stderr)
    assert.match(wrong.stderr, /promoted replica's source was/)
    assert.equal(await sha256(other), before)
    await assert.rejects(fs.stat(`${other}.vdrep`))
    await fs.stat(`${other}.psf`)
    assert.equal((await vdrep(['reprotect', replica, '--to', disk])).code, 0)
    const again = json<ReprotectResult>(await vdrep(['reprotect', replica, '--json']))
    assert.equal(again.alreadyReprotected, true)
    assert.equal(again.push.mode, 'delta')
    assert.equal(again.push.blocks, 0)
    assert.ok(await filesEqual(disk, replica))
  })
})
