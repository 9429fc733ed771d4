// A group push over SSH to a real `vdrep serve` (doc/group-commit.md): the receiver commits the
// members as a unit. Broken on purpose: the receiver killed (-9) before the group record and
// between member applies (after a restart: none, or all); a member's tracker stopped
// (SIGSTOP) during the cut (the group push fails at once and the other member's writes run);
// the group push killed (-9) while it holds a member's writes (the tracker lets them go).
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import {cmpEqual, qemuIo, sleep, SshCycle, sha256, waitFor, type SshDisk} from '../helpers/cycle.js'
import {json, startVdrep} from '../helpers/cli.js'
import {TrackerControlClient} from '../../src/core/tracker/control-client.js'
import type {RunningTracker} from '../core/tracker/tracker-helpers.js'
import {readReplicaState} from '../../src/core/receiver/replica-state.js'
import {listGroupRecords} from '../../src/core/group/store.js'
import type {GroupPushResult} from '../../src/core/group/push-group.js'

const MiB = 1 << 20

describe('push --group over SSH: the receiver commits all members or none', function () {
  this.timeout(180_000)
  let c: SshCycle
  let a: SshDisk
  let b: SshDisk
  let tb: RunningTracker

  beforeEach(async () => {
    c = await SshCycle.start()
    // Both members at once (each is an init and a full sync over SSH: seconds of CLI start-up).
    ;[a, b] = await Promise.all([c.newDisk('ga', 8 * MiB), c.newDisk('gb', 8 * MiB)])
    ;[, tb] = await Promise.all([c.track(a), c.track(b)])
  })
  afterEach(async () => {
    delete process.env.VDREP_TEST_GROUP_CRASH
    tb.child.kill('SIGCONT')
    await c.stop()
  })

  const seqOf = async (d: SshDisk) => (await readReplicaState(d.replica)).state?.lastSeq ?? -1
  const write = async (d: SshDisk, pattern: number) => qemuIo(d.uri, [`write -P ${pattern} 1M 256k`, `write -P ${pattern + 1} 5M 64k`])
  const restartServe = async (crash?: string) => {
    await c.serve.kill9()
    if (crash) process.env.VDREP_TEST_GROUP_CRASH = crash
    else delete process.env.VDREP_TEST_GROUP_CRASH
    await c.serve.start()
  }

  it('commits both members at one group point, which the replica host lists', async () => {
    await write(a, 0x11)
    await write(b, 0x21)
    const r = await c.vdrep(['push', '--group', 'db', a.disk, b.disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<GroupPushResult>(r)
    assert.deepEqual(
      out.members.map((m) => m.seq),
      [1, 1],
    )
    assert.ok(await cmpEqual(a.disk, a.replica))
    assert.ok(await cmpEqual(b.disk, b.replica))
    const records = await listGroupRecords(c.root, 'db')
    assert.equal(records.length, 1)
    assert.deepEqual(
      records[0].members.map((m) => [m.path, m.seq]),
      [
        ['ga.img', 1],
        ['gb.img', 1],
      ],
    )
    // The replica host lists the group point, and each member's point names it.
    const gp = await c.vdrep(['points', '--group', 'db', '--root', c.root, '--json'])
    assert.equal(gp.code, 0, gp.stderr)
    const listed = json<{points: Array<{groupSeq: number; restorable: boolean; members: Array<{path: string; seq: number; kept: boolean}>}>}>(gp)
    assert.equal(listed.points.length, 1)
    assert.equal(listed.points[0].restorable, true)
    const mp = await c.vdrep(['points', 'gb.img', '--root', c.root])
    assert.equal(mp.code, 0, mp.stderr)
    assert.match(mp.stdout, /GROUP/)
    assert.match(mp.stdout, /^1 .* db#1 /m)
    // Members compress like a lone push (the patterns shrink), and --compress none sends raw.
    for (const m of out.members) {
      assert.equal(m.compression?.codec, 'zstd', JSON.stringify(m.compression))
      assert.ok((m.wireBytes ?? Infinity) < m.bytesSent / 4, `${m.wireBytes} wire bytes for ${m.bytesSent}`)
    }
    await write(a, 0x31)
    await write(b, 0x41)
    const raw = await c.vdrep(['push', '--group', 'db', a.disk, b.disk, '--json', '--compress', 'none'])
    assert.equal(raw.code, 0, raw.stderr)
    for (const m of json<GroupPushResult>(raw).members) assert.equal(m.compression?.codec, 'none', JSON.stringify(m.compression))
    assert.ok(await cmpEqual(a.disk, a.replica))
    assert.ok(await cmpEqual(b.disk, b.replica))
  })

  it('kill -9 of the receiver before the group record: after a restart, neither member moved', async () => {
    const before = [await sha256(a.replica), await sha256(b.replica)]
    await restartServe('before-record')
    await write(a, 0x31)
    await write(b, 0x41)
    const r = await c.vdrep(['push', '--group', 'db', a.disk, b.disk])
    assert.notEqual(r.code, 0, 'the receiver died: the group push fails')
    await restartServe()
    assert.deepEqual([await seqOf(a), await seqOf(b)], [0, 0])
    assert.deepEqual([await sha256(a.replica), await sha256(b.replica)], before, 'no member applied')
    for (const d of [a, b]) await assert.rejects(fs.stat(`${d.replica}.vdrep-journal-held`), 'the held bundles were dropped')
    // Nothing was lost: the blocks went back to the change records, and the next group push ships them.
    const again = await c.vdrep(['push', '--group', 'db', a.disk, b.disk])
    assert.equal(again.code, 0, again.stderr)
    assert.ok(await cmpEqual(a.disk, a.replica))
    assert.ok(await cmpEqual(b.disk, b.replica))
  })

  it('kill -9 of the receiver between member applies: after a restart, both members are at the group point', async () => {
    await restartServe('after-first-apply')
    await write(a, 0x51)
    await write(b, 0x61)
    const want = [await sha256(a.disk), await sha256(b.disk)]
    const r = await c.vdrep(['push', '--group', 'db', a.disk, b.disk])
    assert.notEqual(r.code, 0, 'the receiver died: the group push fails')
    assert.deepEqual([await seqOf(a), await seqOf(b)], [1, 0], 'the first member was applied, the second not, when the receiver died')
    assert.ok((await fs.stat(`${b.replica}.vdrep-journal-held`)).isFile(), "the second member's bundle is held")
    await restartServe()
    assert.deepEqual([await seqOf(a), await seqOf(b)], [1, 1], 'recovery applied the other member of the committed group')
    assert.deepEqual([await sha256(a.replica), await sha256(b.replica)], want)
    assert.match(c.serve.log, /gb\.img: group member's held bundle applied at start/)
    // The client's records catch up (pendingSeq) at the next group push, which is a delta.
    await write(a, 0x71)
    const again = await c.vdrep(['push', '--group', 'db', a.disk, b.disk, '--json'])
    assert.equal(again.code, 0, again.stderr)
    assert.deepEqual(
      json<GroupPushResult>(again).members.map((m) => m.seq),
      [2, 2],
    )
    assert.ok(await cmpEqual(a.disk, a.replica))
    assert.ok(await cmpEqual(b.disk, b.replica))
  })

  it("a member's tracker that does not answer (SIGSTOP) aborts the cut; the other member's writes go on", async () => {
    await write(a, 0x13)
    tb.child.kill('SIGSTOP')
    const started = Date.now()
    const r = await c.vdrep(['push', '--group', 'db', a.disk, b.disk, '--cut-timeout', '2s'])
    assert.equal(r.code, 7, r.stderr)
    assert.match(r.stderr, /did not take the group's cut/)
    assert.match(r.stderr, /gb\.img/)
    assert.ok(Date.now() - started < 30_000)
    // A is not held: a write through its export completes now, not after the lease.
    const t0 = Date.now()
    await write(a, 0x15)
    assert.ok(Date.now() - t0 < 3_000, `a write to the other member waited ${Date.now() - t0} ms`)
    assert.equal(await seqOf(a), 0, 'nothing was committed')
    tb.child.kill('SIGCONT')
    await write(b, 0x17)
    const again = await c.vdrep(['push', '--group', 'db', a.disk, b.disk])
    assert.equal(again.code, 0, again.stderr)
    assert.ok(await cmpEqual(a.disk, a.replica), 'the blocks of the failed cut went back to the record and were shipped')
    assert.ok(await cmpEqual(b.disk, b.replica))
  })

  it('kill -9 of the group push while it holds a member: the tracker lets the writes go at once', async () => {
    // Members are frozen 20 s apart: the first one (ga) holds its writes while the push waits.
    const push = startVdrep(['push', '--group', 'db', a.disk, b.disk], {env: {...c.env, VDREP_TEST_GROUP_CUT_STAGGER_MS: '20000'}})
    const exited = new Promise((resolve) => push.on('close', resolve))
    const ctl = await TrackerControlClient.connect(a.disk)
    try {
      await waitFor('the group push to hold ga', async () => (await ctl.status()).frozen !== null, 20_000, 50)
    } finally {
      await ctl.close()
    }
    let done = false
    const held = write(a, 0x19).then(() => (done = true))
    await sleep(700)
    assert.equal(done, false, 'a write to a held member waits for the cut')
    const t0 = Date.now()
    push.kill('SIGKILL')
    await exited
    await held
    assert.ok(Date.now() - t0 < 3_000, `the write completed ${Date.now() - t0} ms after the push died (the lease is 10 s)`)
    const ctl2 = await TrackerControlClient.connect(a.disk)
    try {
      assert.equal((await ctl2.status()).frozen, null, 'the frozen set was handed back')
    } finally {
      await ctl2.close()
    }
  })
})
