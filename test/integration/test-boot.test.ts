// `vdrep test start/stop` with replication going on over real sshd: qemu-io writes through the
// test view and reads its writes back, while the tracker's writes are pushed as deltas; the
// replica stays equal to its source (never written by the test), the view stays on its point;
// `test stop` from another shell discards the side file and records the test (`vdrep points`);
// the next push is a delta. The cap is enforced (ENOSPC, nothing written); kill -9 of the test
// leaves the replica intact and the next start or stop cleans the side file; one test at a time.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json} from '../helpers/cli.js'
import {cmpEqual, exists, MiB, qemuIo, sha256, SshCycle, type SshDisk} from '../helpers/cycle.js'
import {startForeground, type Foreground} from '../helpers/foreground.js'
import {run, runOk} from '../core/tracker/nbd/harness.js'

interface PointsJson {
  points: Array<{seq: number; time: string; tested: string | null}>
}

describe('vdrep test start/stop: a writable view of a point while replication goes on', function () {
  this.timeout(300_000)
  let c: SshCycle
  const views: Foreground[] = []

  before(async () => {
    c = await SshCycle.start()
  })
  after(async () => {
    for (const v of views) await v.stop('SIGKILL')
    await c?.stop()
  })

  const push = async (d: SshDisk) => {
    const r = await c.vdrep(['push', d.disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<{mode: string; seq: number}>(r)
    assert.equal(out.mode, 'delta', `a push during or after a test must be a delta: ${r.stdout}`)
    return out.seq
  }
  const points = async (d: SshDisk) => json<PointsJson>(await c.vdrep(['points', d.replica, '--json'])).points
  const startTest = async (d: SshDisk, sock: string, extra: string[] = []) => {
    const v = await startForeground(['test', 'start', d.replica, '--nbd', `unix:${sock}`, ...extra], /^testing point/, c.env)
    views.push(v)
    return v
  }
  const uriOf = (d: SshDisk, sock: string) => `nbd+unix:///${d.name}.img?socket=${sock}`

  it('qemu-io writes through the view; pushes go on as deltas; the replica is never written; stop records the test', async () => {
    const d = await c.newDisk('boot', 16 * MiB)
    const t = await c.track(d)
    await qemuIo(d.uri, ['write -P 0x31 0 1048576', 'flush'])
    const s1 = await push(d)
    const copy1 = await fs.readFile(d.disk)

    const sock = path.join(c.dir, 'boot-test.nbd')
    const view = await startTest(d, sock, ['--at', String(s1)])
    assert.equal((await fs.stat(sock)).mode & 0o777, 0o600)
    const testDir = `${d.replica}.vdrep-test`
    assert.ok(await exists(path.join(testDir, 'overlay.img')))
    // The "guest" writes: a partial grain, a whole run, zeroes; and reads them back.
    await qemuIo(uriOf(d, sock), [
      'write -P 0x77 1000 3000',
      'write -P 0x78 4194304 2097152',
      'write -z 8388608 131072',
      'read -P 0x77 1000 3000',
      'read -P 0x78 4194304 2097152',
      'read -P 0 8388608 131072',
      'flush',
    ])
    const expected = Buffer.from(copy1)
    expected.fill(0x77, 1000, 4000)
    expected.fill(0x78, 4194304, 4194304 + 2097152)
    expected.fill(0, 8388608, 8388608 + 131072)

    // Replication goes on: the source changes (some of it where the guest wrote too), pushes are deltas.
    for (let round = 0; round < 2; round++) {
      await qemuIo(d.uri, [`write -P 0x${(0x40 + round).toString(16)} ${4 * MiB + round * MiB} 1048576`, 'flush'])
      await push(d)
      assert.ok(await cmpEqual(d.disk, d.replica), `round ${round}: the replica differs from its source during the test`)
    }
    const viewOut = path.join(c.dir, 'boot-view.img')
    await runOk('nbdcopy', [uriOf(d, sock), viewOut])
    assert.ok((await fs.readFile(viewOut)).equals(expected), 'the view is its point plus the guest writes, whatever pushes did meanwhile')

    const during = json<{testing?: {seq: number; pid: number}}>(await c.vdrep(['points', d.replica, '--json']))
    assert.equal(during.testing?.seq, s1, 'vdrep points shows the test running')
    assert.equal(during.testing?.pid, view.child.pid)
    const stop = await c.vdrep(['test', 'stop', d.replica, '--json'])
    assert.equal(stop.code, 0, stop.stderr)
    const stopped = json<{record?: {seq: number}}>(stop)
    assert.equal(stopped.record?.seq, s1)
    const end = await view.exited
    assert.equal(end.code, 0, end.stderr)
    assert.match(end.stdout, /stopped the test of point \d+ .* recorded in the replica state/)
    assert.ok(!(await exists(testDir)), 'the side file is discarded')
    assert.ok(!(await exists(sock)), 'the socket is removed')
    assert.equal(json<{testing?: unknown}>(await c.vdrep(['points', d.replica, '--json'])).testing, undefined)
    const listed = (await points(d)).find((p) => p.seq === s1)
    assert.match(listed?.tested ?? '', /^\d{4}-\d{2}-\d{2}T.* for \d+/, `vdrep points shows the test: ${JSON.stringify(listed)}`)

    await qemuIo(d.uri, ['write -P 0x55 12582912 65536', 'flush'])
    await push(d)
    assert.ok(await cmpEqual(d.disk, d.replica), 'after the test, the next push is a delta and the replica equals its source')
    await c.untrack(t)
  })

  it('enforces the cap with ENOSPC; kill -9 leaves the replica intact; the next start cleans up; one test at a time', async () => {
    const d = await c.newDisk('cap', 8 * MiB)
    const before = await sha256(d.replica)
    const sock = path.join(c.dir, 'cap-test.nbd')
    const view = await startTest(d, sock, ['--cap', '1M'])
    const over = await run('qemu-io', ['-f', 'raw', uriOf(d, sock), '-c', 'write -P 0x66 0 2097152'])
    assert.match(over.stdout + over.stderr, /No space left on device/, `a write past the cap: ${over.stdout}${over.stderr}`)
    await qemuIo(uriOf(d, sock), ['write -P 0x67 0 524288', 'read -P 0x67 0 524288'])
    const again = await run('qemu-io', ['-f', 'raw', uriOf(d, sock), '-c', 'write -P 0x68 1048576 1048576'])
    assert.match(again.stdout + again.stderr, /No space left on device/, 'the cap counts what is already held')
    const side = await fs.stat(path.join(`${d.replica}.vdrep-test`, 'overlay.img'))
    assert.ok(side.blocks * 512 <= 1 * MiB + 65536, `the side file holds ${side.blocks * 512} bytes, over the cap`)

    const second = await c.vdrep(['test', 'start', d.replica, '--nbd', `unix:${sock}2`])
    assert.equal(second.code, 3, `a second test of one replica is refused: ${second.stderr}`)
    assert.match(second.stderr, /a test of .* is running \(pid \d+/)

    // A test.json naming another process (written by whoever could write the folder): never signalled.
    const info = path.join(`${d.replica}.vdrep-test`, 'test.json')
    const bystander = spawn('sleep', ['60'])
    const real = await fs.readFile(info, 'utf8')
    await fs.writeFile(info, JSON.stringify({...JSON.parse(real), pid: bystander.pid}))
    const refused = await c.vdrep(['test', 'stop', d.replica])
    assert.equal(refused.code, 1, refused.stderr)
    assert.match(refused.stderr, /which is not a vdrep test start: no signal was sent/)
    assert.equal(bystander.exitCode, null, 'the process test.json named was not signalled')
    assert.equal(bystander.signalCode, null)
    bystander.kill('SIGKILL')

    await view.stop('SIGKILL')
    assert.equal(await sha256(d.replica), before, 'the replica is intact after kill -9 of the test')
    assert.ok(await exists(`${d.replica}.vdrep-test`), 'the killed test left its folder')
    const next = await startTest(d, sock)
    assert.match(next.stderr() + next.stdout(), /removed the side file of a test that was killed/)
    const zeroView = path.join(c.dir, 'cap-view.img')
    await runOk('nbdcopy', [uriOf(d, sock), zeroView])
    assert.ok(await cmpEqual(zeroView, d.replica), 'a new test starts from the point, not from the killed test’s writes')
    await next.stop('SIGKILL')
    const stop = await c.vdrep(['test', 'stop', d.replica])
    assert.equal(stop.code, 1, 'no test was running')
    assert.match(stop.stderr, /no test of .* is running \(a test killed before it stopped left its side file; it was removed\)/)
    assert.ok(!(await exists(`${d.replica}.vdrep-test`)))
    assert.equal(await sha256(d.replica), before)
    const r = await c.vdrep(['push', d.disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    assert.notEqual(json<{mode: string}>(r).mode, 'fullsync', 'killed tests never cause a full sync')
  })
})
