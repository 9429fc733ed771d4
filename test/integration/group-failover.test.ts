// Recovery of a consistency group: `vdrep test start --group` (every member's view at one group
// point over one NBD server while group pushes go on), and `vdrep failover --group` (every member
// promoted at one group point, every member checked before the first is touched, a run cut short
// finished by running it again, and the planned form at the members' final pushes).
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {execFile} from 'node:child_process'
import {promisify} from 'node:util'
import {json, vdrep} from '../helpers/cli.js'
import {startForeground} from '../helpers/foreground.js'
import {filesEqual} from '../helpers/disks.js'
import {qemuIo} from '../helpers/cycle.js'
import type {RunningTracker} from '../core/tracker/tracker-helpers.js'
import {exists, groupFixture, groupMember, memberUri, type GroupFixture, type GroupMember} from '../helpers/group-fixture.js'
import type {GroupFailoverResult} from '../../src/core/group/failover-group.js'

const MiB = 1 << 20

describe('recovery of a consistency group: test start --group, failover --group', function () {
  this.timeout(120_000)
  let f: GroupFixture & {undo(): Promise<void>}
  let dir: string
  let root: string
  let trackers: RunningTracker[]

  beforeEach(async () => {
    f = await groupFixture()
    ;({dir, root, trackers} = f)
  })
  afterEach(() => f.undo())

  type Member = GroupMember
  const member = (name: string) => groupMember(f, name)
  const uri = memberUri
  const promoted = (m: Member) => exists(`${m.replica}.psf`)
  const groupPush = async (a: Member, b: Member) => {
    const r = await vdrep(['push', '--group', 'vm', a.disk, b.disk])
    assert.equal(r.code, 0, r.stderr)
  }

  it('puts every member back to one group point; refuses, changing nothing, while any member cannot go; a second run finishes', async () => {
    const a = await member('a')
    const b = await member('b')
    await qemuIo(uri(a), ['write -P 0x11 0 128k'])
    await qemuIo(uri(b), ['write -P 0x21 1M 64k'])
    await groupPush(a, b)
    // The replicas at group point 1, kept aside to compare with after the failover.
    for (const m of [a, b]) await fs.copyFile(m.replica, `${m.replica}.at1`)
    await qemuIo(uri(a), ['write -P 0x12 64k 1M'])
    await groupPush(a, b)
    await qemuIo(uri(b), ['write -P 0x22 2M 512k'])
    await groupPush(a, b)
    // a alone moves on: group point 1 is a's sequence 2, b's 2 (each had one full sync first).
    await qemuIo(uri(a), ['write -P 0x13 3M 64k'])
    assert.equal((await vdrep(['push', a.disk])).code, 0)

    const unplanned = await vdrep(['failover', '--group', 'vm', '--root', root, '--at', '1'])
    assert.equal(unplanned.code, 2, unplanned.stderr)
    assert.match(unplanned.stderr, /FAILOVER_UNPLANNED|not a final push/)
    assert.equal((await vdrep(['failover', '--group', 'vm', '--root', root, '--at', '99', '--force'])).code, 2)
    // One member that cannot fail over (its replica state gone): neither member is promoted.
    const state = `${b.replica}.vdrep`
    await fs.rename(state, `${state}.aside`)
    const oneBad = await vdrep(['failover', '--group', 'vm', '--root', root, '--at', '1', '--force'])
    assert.equal(oneBad.code, 2, oneBad.stderr)
    assert.equal(await promoted(a), false, 'a was promoted although b could not be')
    await fs.rename(`${state}.aside`, state)
    assert.equal((await vdrep(['push', a.disk])).code, 0, 'nothing fenced a after the refusal')

    const r = await vdrep(['failover', '--group', 'vm', '--root', root, '--at', '1', '--force', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<GroupFailoverResult>(r)
    assert.equal(out.groupSeq, 1)
    assert.deepEqual(out.members.map((m) => path.basename(m.replica)).sort(), ['a.img', 'b.img'])
    for (const m of [a, b]) assert.ok(await filesEqual(m.replica, `${m.replica}.at1`), `${m.replica} is not at group point 1`)
    for (const m of out.members) assert.ok(m.rolledBackTo !== undefined && m.undoneBlocks > 0, JSON.stringify(m))
    // Fenced: the old sources cannot write the promoted replicas.
    assert.equal((await vdrep(['push', a.disk])).code, 12)
    // Run again (as after a kill): both confirmed at the same point, nothing rolled back twice.
    const rerun = await vdrep(['failover', '--group', 'vm', '--root', root, '--at', '1', '--force', '--json'])
    assert.equal(rerun.code, 0, rerun.stderr + rerun.stdout)
    const again = json<GroupFailoverResult>(rerun)
    assert.ok(again.members.every((m) => m.resumed))
    for (const m of [a, b]) assert.ok(await filesEqual(m.replica, `${m.replica}.at1`))
    // Without --at, the point every member can be put at: the one they were promoted at.
    const plain = json<GroupFailoverResult>(await vdrep(['failover', '--group', 'vm', '--root', root, '--force', '--json']))
    assert.equal(plain.groupSeq, 1)
    // A different point now would split the group: refused.
    assert.equal((await vdrep(['failover', '--group', 'vm', '--root', root, '--at', '2', '--force'])).code, 2)
  })

  it('export --group and test start --group serve every member at one group point as exports of one socket; pushes go on; test stop of a member ends and records it', async () => {
    const a = await member('a')
    const b = await member('b')
    await qemuIo(uri(a), ['write -P 0x51 0 128k'])
    await qemuIo(uri(b), ['write -P 0x61 64k 64k'])
    await groupPush(a, b)
    for (const m of [a, b]) await fs.copyFile(m.replica, `${m.replica}.at1`)
    await qemuIo(uri(a), ['write -P 0x52 0 256k'])
    await qemuIo(uri(b), ['write -P 0x62 0 256k'])
    await groupPush(a, b)
    // export --group: copies of every member at group point 1, and the same read-only over NBD.
    const out = path.join(dir, 'restore')
    const copied = await vdrep(['export', '--group', 'vm', '--root', root, '--at', '1', '--to', out])
    assert.equal(copied.code, 0, copied.stderr)
    for (const m of [a, b]) assert.ok(await filesEqual(path.join(out, path.basename(m.replica)), `${m.replica}.at1`))
    // A run cut short (b's file is in the way: the copy of b fails after a's is done) is finished
    // by the same command again: a's copy kept (the same file), b's copied; another point refused.
    const cut = path.join(dir, 'restore-cut')
    await fs.mkdir(path.join(cut, 'b.img'), {recursive: true})
    const first = await vdrep(['export', '--group', 'vm', '--root', root, '--at', '1', '--to', cut, '--json'])
    assert.equal(first.code, 2, `${first.stdout}${first.stderr}`)
    const aIno = (await fs.stat(path.join(cut, 'a.img'))).ino
    await fs.rmdir(path.join(cut, 'b.img'))
    assert.equal((await vdrep(['export', '--group', 'vm', '--root', root, '--at', '2', '--to', cut])).code, 2, 'another group point into the same folder')
    const again = await vdrep(['export', '--group', 'vm', '--root', root, '--at', '1', '--to', cut, '--json'])
    assert.equal(again.code, 0, again.stderr)
    const copies = json<{copies: Array<{to: string; kept?: boolean}>}>(again).copies
    assert.deepEqual(
      copies.map((c) => [path.basename(c.to), c.kept === true]),
      [
        ['a.img', true],
        ['b.img', false],
      ],
    )
    assert.equal((await fs.stat(path.join(cut, 'a.img'))).ino, aIno, "a's copy was made again")
    for (const m of [a, b]) assert.ok(await filesEqual(path.join(cut, path.basename(m.replica)), `${m.replica}.at1`))
    const roSock = path.join(dir, 'group-ro.nbd')
    const ro = await startForeground(['export', '--group', 'vm', '--root', root, '--at', '1', '--nbd', `unix:${roSock}`], /^exporting group/)
    try {
      await promisify(execFile)('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', `nbd+unix:///b.img?socket=${roSock}`, `${b.replica}.ro`])
      assert.ok(await filesEqual(`${b.replica}.ro`, `${b.replica}.at1`))
      await assert.rejects(qemuIo(`nbd+unix:///a.img?socket=${roSock}`, ['write -P 1 0 4096']), 'the export is read-only')
    } finally {
      await ro.stop()
    }
    const sock = path.join(dir, 'group-test.nbd')
    const view = await startForeground(['test', 'start', '--group', 'vm', '--root', root, '--at', '1', '--nbd', `unix:${sock}`], /^testing group/)
    try {
      // The "guest" writes into a's view; each export reads as its member at group point 1 elsewhere.
      await qemuIo(`nbd+unix:///a.img?socket=${sock}`, ['write -P 0x77 1M 64k'])
      for (const m of [a, b]) {
        const out = `${m.replica}.view`
        await promisify(execFile)('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', `nbd+unix:///${path.basename(m.replica)}?socket=${sock}`, out])
        const at1 = await fs.readFile(`${m.replica}.at1`)
        if (m === a) at1.fill(0x77, MiB, MiB + 65536)
        assert.ok((await fs.readFile(out)).equals(at1), `${m.replica}'s view is not its group point 1`)
      }
      // Replication goes on, as deltas, while the group is tested; the replicas are only written by it.
      await qemuIo(uri(b), ['write -P 0x63 2M 64k'])
      await groupPush(a, b)
      for (const m of [a, b]) assert.ok(await filesEqual(m.disk, m.replica))
      const stop = await vdrep(['test', 'stop', a.replica])
      assert.equal(stop.code, 0, stop.stderr)
      const ended = await view.exited
      assert.equal(ended.code, 0, ended.stderr)
      assert.match(ended.stdout, /stopped the test of group vm at point 1: 1 writes discarded; recorded/)
    } finally {
      await view.stop('SIGKILL')
    }
    for (const m of [a, b]) {
      const pts = json<{points: Array<{seq: number; tested: string | null}>}>(await vdrep(['points', m.replica, '--json'])).points
      assert.ok(
        pts.some((p) => p.tested),
        `${m.replica}: the test is recorded`,
      )
      await assert.rejects(fs.stat(`${m.replica}.vdrep-test`), 'the side file is discarded')
    }
  })

  it("export --group into a folder holding a member's file from elsewhere refuses, also when run again: never a restore of two points", async () => {
    const a = await member('a')
    const b = await member('b')
    await qemuIo(uri(a), ['write -P 0x71 0 128k'])
    await groupPush(a, b)
    await qemuIo(uri(a), ['write -P 0x72 0 256k'])
    await qemuIo(uri(b), ['write -P 0x73 0 256k'])
    await groupPush(a, b)
    // The folder holds a's disk at group point 1, exported alone earlier (no group record in it).
    const out = path.join(dir, 'restore')
    await fs.mkdir(out)
    assert.equal((await vdrep(['export', a.replica, '--at', '1', '--to', path.join(out, 'a.img')])).code, 0)
    const first = await vdrep(['export', '--group', 'vm', '--root', root, '--at', '2', '--to', out])
    assert.equal(first.code, 2, first.stderr)
    // "A run cut short is finished by running it again": the same command must not take a's file as point 2's.
    const again = await vdrep(['export', '--group', 'vm', '--root', root, '--at', '2', '--to', out])
    if (again.code === 0)
      for (const m of [a, b]) assert.ok(await filesEqual(path.join(out, `${path.basename(m.replica)}`), m.disk), `${m.replica}'s copy is not group point 2`)
    assert.equal(again.code, 2, again.stderr)
  })

  it('--planned: after the VM stopped and a final push of each member, every member at its final push, nothing lost', async () => {
    const a = await member('a')
    const b = await member('b')
    await qemuIo(uri(a), ['write -P 0x31 0 256k'])
    await qemuIo(uri(b), ['write -P 0x41 0 256k'])
    await groupPush(a, b)
    await qemuIo(uri(a), ['write -P 0x32 1M 64k'])
    for (const t of trackers.splice(0)) await t.stop('SIGTERM')
    assert.equal((await vdrep(['push', a.disk, '--final'])).code, 0)
    const early = await vdrep(['failover', '--group', 'vm', '--root', root, '--planned'])
    assert.equal(early.code, 2, 'b had no final push yet')
    assert.equal(await promoted(a), false)
    assert.equal((await vdrep(['push', b.disk, '--final'])).code, 0)
    const r = await vdrep(['failover', '--group', 'vm', '--root', root, '--planned', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<GroupFailoverResult>(r)
    assert.equal(out.groupSeq, undefined)
    for (const m of out.members) assert.ok(m.planned && m.lossWindowSeconds === 0 && m.rolledBackTo === undefined, JSON.stringify(m))
    for (const m of [a, b]) assert.ok(await filesEqual(m.disk, m.replica))
  })
})
