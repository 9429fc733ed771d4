// `vdrep push --group` to local replicas (the receiver in-process, over the same protocol):
// the group commits, and what a group push must refuse before it sends anything: a member of
// another group, a member without a tracker (--scan gives no point in time), members whose
// replicas no one receiver holds, a member that needs a full sync.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, startVdrep, vdrep} from '../helpers/cli.js'
import {filesEqual, makeMixedDisk, tempDir} from '../helpers/disks.js'
import {qemuIo} from '../helpers/cycle.js'
import {startTracker, type RunningTracker} from '../core/tracker/tracker-helpers.js'
import type {GroupPushResult} from '../../src/core/group/push-group.js'

const MiB = 1 << 20

describe('push --group to local replicas', function () {
  this.timeout(120_000)
  let dir: string
  const trackers: RunningTracker[] = []

  beforeEach(async () => {
    dir = await tempDir()
    await fs.mkdir(path.join(dir, 'r1'))
    await fs.mkdir(path.join(dir, 'r2'))
  })
  afterEach(async () => {
    for (const t of trackers.splice(0)) await t.stop('SIGTERM').catch(() => undefined)
    await fs.rm(dir, {recursive: true, force: true})
  })

  async function disk(name: string, replicaDir: string, extra: string[] = [], fullsync = true): Promise<{disk: string; replica: string; sock: string}> {
    const d = path.join(dir, `${name}.img`)
    const replica = path.join(dir, replicaDir, `${name}.img`)
    await makeMixedDisk(d, 4 * MiB, name)
    const i = await vdrep(['init', d, '--to', replica, ...extra])
    assert.equal(i.code, 0, i.stderr)
    if (fullsync) assert.equal((await vdrep(['fullsync', d])).code, 0)
    return {disk: d, replica, sock: path.join(dir, `${name}.sock`)}
  }
  const track = async (d: {disk: string; sock: string}) => trackers.push(await startTracker(d.disk, ['--nbd', `unix:${d.sock}`]))
  const uri = (d: {disk: string; sock: string}) => `nbd+unix:///${path.basename(d.disk)}?socket=${d.sock}`

  it('commits every member at one group point; the .psf group is checked', async () => {
    const a = await disk('a', 'r1', ['--group', 'vm'])
    const b = await disk('b', 'r1', ['--group', 'vm'])
    await track(a)
    await track(b)
    await qemuIo(uri(a), ['write -P 0x55 64k 128k'])
    await qemuIo(uri(b), ['write -P 0x66 1M 64k'])
    const r = await vdrep(['push', '--group', 'vm', a.disk, b.disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<GroupPushResult>(r)
    assert.equal(out.groupSeq, 1)
    assert.ok(await filesEqual(a.disk, a.replica))
    assert.ok(await filesEqual(b.disk, b.replica))
    // The record is beside the local replicas (their receiver's root).
    assert.ok((await fs.stat(path.join(dir, 'r1', '.vdrep-groups', 'vm', '0000000000000001.vdrep-group'))).isFile())
    const other = await vdrep(['push', '--group', 'other', a.disk, b.disk])
    assert.equal(other.code, 2, other.stderr)
    assert.match(other.stderr, /belongs to group vm, not other/)
    // No disk named: the members are the config file's disks of that group.
    const conf = path.join(dir, 'vdrep.conf')
    const table = (d: {disk: string; replica: string}) => `[[disk]]\npath = "${d.disk}"\ntarget = "${d.replica}"\ngroup = "vm"\n`
    await fs.writeFile(conf, `${table(a)}${table(b)}[[disk]]\npath = "${path.join(dir, 'elsewhere.img')}"\ntarget = "/x/y.img"\ngroup = "web"\n`)
    await qemuIo(uri(b), ['write -P 0x67 2M 64k'])
    const fromConfig = await vdrep(['push', '--group', 'vm', '--config', conf, '--json'])
    assert.equal(fromConfig.code, 0, fromConfig.stderr)
    assert.deepEqual(
      json<GroupPushResult>(fromConfig).members.map((m) => path.basename(m.disk)),
      ['a.img', 'b.img'],
    )
    assert.ok(await filesEqual(b.disk, b.replica))
  })

  it('refuses a member without a tracker, members on two receivers, and a member that needs a full sync; nothing is sent', async () => {
    const a = await disk('a', 'r1')
    const b = await disk('b', 'r1')
    const c = await disk('c', 'r2')
    const n = await disk('n', 'r1', [], false)
    await track(a)
    const noTracker = await vdrep(['push', '--group', 'g', a.disk, b.disk])
    assert.equal(noTracker.code, 2, noTracker.stderr)
    assert.match(noTracker.stderr, /b\.img has no running tracker.*--scan gives no point in time/)
    await track(b)
    await track(c)
    const split = await vdrep(['push', '--group', 'g', a.disk, c.disk])
    assert.equal(split.code, 2, split.stderr)
    assert.match(split.stderr, /replicate to 2 receivers/)
    await track(n)
    const full = await vdrep(['push', '--group', 'g', a.disk, n.disk])
    assert.equal(full.code, 4, full.stderr)
    assert.match(full.stderr, /n\.img cannot take a delta .*a group push ships deltas only/)
    await assert.rejects(fs.stat(n.replica), 'nothing was written for the member that needs a full sync')
    await assert.rejects(fs.stat(path.join(dir, 'r1', '.vdrep-groups')), 'no group record')
    // The members' blocks were handed back: a group push of the good ones still ships and commits.
    await qemuIo(uri(a), ['write -P 0x21 0 64k'])
    const ok = await vdrep(['push', '--group', 'g', a.disk, b.disk])
    assert.equal(ok.code, 0, ok.stderr)
    assert.ok(await filesEqual(a.disk, a.replica))
  })

  it('drops the records of group points no member can be put back to, never the newest, and lists the rest as restorable', async () => {
    const a = await disk('a', 'r1', ['--group', 'vm'])
    const b = await disk('b', 'r1', ['--group', 'vm'])
    await track(a)
    await track(b)
    for (const d of [a, b]) assert.equal((await vdrep(['points', d.replica, '--retention', 'count:2'])).code, 0)
    const records = async () => (await fs.readdir(path.join(dir, 'r1', '.vdrep-groups', 'vm'))).sort()
    for (let i = 1; i <= 6; i++) {
      await qemuIo(uri(a), [`write -P ${i} ${i * 64}k 64k`])
      await qemuIo(uri(b), [`write -P ${i + 16} ${i * 128}k 64k`])
      const r = await vdrep(['push', '--group', 'vm', a.disk, b.disk])
      assert.equal(r.code, 0, r.stderr)
      assert.ok((await records()).length <= 3, `round ${i}: ${(await records()).join(' ')}`)
    }
    const left = await records()
    assert.equal(left.at(-1), '0000000000000006.vdrep-group', 'the newest record stays')
    const listed = json<{points: Array<{groupSeq: number; restorable: boolean}>}>(
      await vdrep(['points', '--group', 'vm', '--root', path.join(dir, 'r1'), '--json']),
    )
    assert.deepEqual(
      listed.points.map((p) => p.groupSeq),
      left.map((f) => Number(f.slice(0, 16))).reverse(),
    )
    for (const p of listed.points) assert.ok(p.restorable, `group point ${p.groupSeq} kept but not restorable`)
    // A retention that keeps more: every new record stays (and 'off', which keeps no old point, would drop them all).
    for (const d of [a, b]) assert.equal((await vdrep(['points', d.replica, '--retention', 'count:50'])).code, 0)
    for (let i = 7; i <= 8; i++) {
      await qemuIo(uri(a), [`write -P ${i} ${i * 64}k 64k`])
      assert.equal((await vdrep(['push', '--group', 'vm', a.disk, b.disk])).code, 0)
    }
    assert.deepEqual((await records()).slice(-3), [left.at(-1), '0000000000000007.vdrep-group', '0000000000000008.vdrep-group'])
  })

  it('a group push killed with kill -9 is a failed attempt of every member in status; the next group push commits', async () => {
    const a = await disk('a', 'r1', ['--group', 'vm'])
    const b = await disk('b', 'r1', ['--group', 'vm'])
    await track(a)
    await track(b)
    await qemuIo(uri(a), ['write -P 0x71 0 3M'])
    await qemuIo(uri(b), ['write -P 0x72 0 3M'])
    const child = startVdrep(['push', '--group', 'vm', a.disk, b.disk, '--bwlimit', '1M', '--compress', 'none'])
    const marked = async (d: {disk: string}) => (await fs.readFile(`${d.disk}.vdrep-running`, 'utf8').catch(() => '')).includes(`"pid":${child.pid},`)
    for (let i = 0; i < 300 && !((await marked(a)) && (await marked(b))); i++) await new Promise((r) => setTimeout(r, 50))
    assert.ok((await marked(a)) && (await marked(b)), 'both members marked running')
    const gone = new Promise((r) => child.once('exit', r))
    child.kill('SIGKILL')
    await gone
    for (const d of [a, b]) {
      const row = json<{disks: Array<{lastAttempt: {errorCode: string | null} | null}>}>(await vdrep(['status', d.disk, '--json'])).disks[0]
      assert.equal(row.lastAttempt?.errorCode, 'ATTEMPT_INTERRUPTED', JSON.stringify(row))
    }
    const r = await vdrep(['push', '--group', 'vm', a.disk, b.disk])
    assert.equal(r.code, 0, r.stderr)
    assert.ok(await filesEqual(a.disk, a.replica))
    assert.ok(await filesEqual(b.disk, b.replica))
    const after = json<{disks: Array<{lastAttemptFailed: boolean}>}>(await vdrep(['status', a.disk, '--json'])).disks[0]
    assert.equal(after.lastAttemptFailed, false)
  })

  it('runs each distinct pre-hook once before the cut and each post-hook once after; a failing pre-hook thaws what was frozen and sends nothing', async () => {
    const a = await disk('a', 'r1', ['--group', 'vm'])
    const b = await disk('b', 'r1', ['--group', 'vm'])
    await track(a)
    await track(b)
    const log = path.join(dir, 'hooks.log')
    const line = (what: string) => `echo "${what} $VDREP_GROUP $(echo "$VDREP_DISKS" | wc -l)" >> ${log}`
    for (const d of [a, b]) {
      assert.equal((await vdrep(['config', d.disk, 'pre-hook', line('freeze')])).code, 0)
      assert.equal((await vdrep(['config', d.disk, 'post-hook', line('thaw')])).code, 0)
    }
    await qemuIo(uri(a), ['write -P 0x11 0 64k'])
    const r = await vdrep(['push', '--group', 'vm', a.disk, b.disk])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(await fs.readFile(log, 'utf8'), 'freeze vm 2\nthaw vm 2\n', 'one shared hook runs once for both disks')
    assert.ok(await filesEqual(a.disk, a.replica))

    // b's own pre-hook fails: a's (already run) is thawed, nothing is sent, the blocks stay for the next push.
    await fs.rm(log)
    assert.equal((await vdrep(['config', b.disk, 'pre-hook', `${line('freeze-b')}; exit 3`])).code, 0)
    await qemuIo(uri(a), ['write -P 0x22 64k 64k'])
    const failed = await vdrep(['push', '--group', 'vm', a.disk, b.disk])
    assert.equal(failed.code, 1, failed.stderr)
    assert.match(failed.stderr, /pre-hook exited with 3/)
    assert.equal(await fs.readFile(log, 'utf8'), 'freeze vm 1\nfreeze-b vm 1\nthaw vm 1\n')
    assert.equal(await filesEqual(a.disk, a.replica), false, 'nothing was sent')
    assert.equal((await vdrep(['config', b.disk, 'pre-hook', line('freeze')])).code, 0)
    assert.equal((await vdrep(['push', '--group', 'vm', a.disk, b.disk])).code, 0)
    assert.ok(await filesEqual(a.disk, a.replica), 'the held-back blocks went with the next push')
  })
})
