// `vdrep export` on the replica host, with replication going on over real sshd: a point served
// over NBD reads the same bytes (nbdcopy, qemu-img: clients vdrep did not write) before, during
// and after pushes that commit meanwhile, each equal to the copy of the source taken at that
// point's push; writes are refused (EPERM, read-only flag); `--to` writes a sparse copy equal to
// it; `--at` takes a sequence, a date, latest; retention keeps a point an export holds open.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json} from '../helpers/cli.js'
import {cmpEqual, MiB, qemuIo, SshCycle, type SshDisk} from '../helpers/cycle.js'
import {startForeground, type Foreground} from '../helpers/foreground.js'
import {run, runOk} from '../core/tracker/nbd/harness.js'

interface PointsJson {
  points: Array<{seq: number; time: string; tested: string | null}>
}

describe('vdrep export: a restore point over NBD or as a sparse copy while pushes commit', function () {
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
    assert.equal(out.mode, 'delta')
    return out.seq
  }
  const points = async (d: SshDisk) => json<PointsJson>(await c.vdrep(['points', d.replica, '--json'])).points
  const exportAt = async (d: SshDisk, at: string[], sock: string) => {
    const v = await startForeground(['export', d.replica, ...at, '--nbd', `unix:${sock}`], /^exporting point/, c.env)
    views.push(v)
    return v
  }
  const uriOf = (d: SshDisk, sock: string) => `nbd+unix:///${d.name}.img?socket=${sock}`
  const nbdcopy = async (uri: string, out: string) => {
    await fs.rm(out, {force: true})
    await runOk('nbdcopy', [uri, out])
  }

  it('serves a point read-only; its bytes do not move while pushes commit, and equal the copy taken at its push', async () => {
    const d = await c.newDisk('exp', 16 * MiB)
    const t = await c.track(d)
    const copies = new Map<number, string>()
    const keep = async (seq: number) => {
      const f = path.join(c.dir, `exp-copy-${seq}.img`)
      await fs.copyFile(d.disk, f)
      copies.set(seq, f)
    }
    const first = (await points(d))[0].seq
    await keep(first)
    await qemuIo(d.uri, ['write -P 0x41 0 65536', 'write -P 0x42 5000000 300000', 'flush'])
    const s1 = await push(d)
    await keep(s1)

    const sockOld = path.join(c.dir, 'exp-old.nbd')
    const sockNow = path.join(c.dir, 'exp-now.nbd')
    const old = await exportAt(d, ['--at', String(first)], sockOld)
    const now = await exportAt(d, [], sockNow) // the current point: s1
    assert.match(now.line, new RegExp(`^exporting point ${s1} `))
    const st = await fs.stat(sockNow)
    assert.equal(st.mode & 0o777, 0o600, 'the socket is for its owner only')

    const info = await runOk('nbdinfo', [uriOf(d, sockNow)])
    assert.match(info, /is_read_only: true/)
    // Block status: the point's zero runs and the replica's holes are reported (clients skip them).
    const map = await runOk('nbdinfo', ['--map', uriOf(d, sockOld)])
    assert.match(map, /hole,zero/, map)
    assert.match(map, /\bdata\b/, map)
    const w = await run('qemu-io', ['-f', 'raw', uriOf(d, sockNow), '-c', 'write -P 0x99 0 4096'])
    assert.ok(w.code !== 0 || /Operation not permitted|failed/.test(w.stdout + w.stderr), `a write went through: ${w.stdout}${w.stderr}`)
    assert.match(w.stdout + w.stderr, /Operation not permitted|read-only|Permission denied/i)

    const outOld = path.join(c.dir, 'exp-out-old.img')
    const outNow = path.join(c.dir, 'exp-out-now.img')
    // Before, during (nbdcopy and a push at once) and after three pushes: the same bytes each time.
    for (let round = 0; round < 3; round++) {
      await qemuIo(d.uri, [`write -P 0x${(0x50 + round).toString(16)} ${round * 3 * MiB} ${2 * MiB}`, `write -z ${12 * MiB} 65536`, 'flush'])
      const [seq] = await Promise.all([push(d), nbdcopy(uriOf(d, sockNow), outNow), nbdcopy(uriOf(d, sockOld), outOld)])
      await keep(seq)
      assert.ok(await cmpEqual(outNow, copies.get(s1)!), `round ${round}: the export of point ${s1} moved while push ${seq} committed`)
      assert.ok(await cmpEqual(outOld, copies.get(first)!), `round ${round}: the export of point ${first} moved`)
    }
    await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uriOf(d, sockNow), copies.get(s1)!])
    assert.ok(await cmpEqual(d.disk, d.replica), 'the replica follows the source meanwhile')

    // Every kept point equals its copy, through --to (a sparse file) and qemu-img.
    for (const p of await points(d)) {
      const to = path.join(c.dir, `exp-to-${p.seq}.img`)
      const r = await c.vdrep(['export', d.replica, '--at', String(p.seq), '--to', to, '--json'])
      assert.equal(r.code, 0, r.stderr)
      assert.ok(await cmpEqual(to, copies.get(p.seq)!), `--to of point ${p.seq} differs from the copy at its push`)
      const s = await fs.stat(to)
      assert.ok(s.blocks * 512 < s.size, `--to of point ${p.seq} is not sparse (${s.blocks * 512} of ${s.size} bytes allocated)`)
    }
    const again = await c.vdrep(['export', d.replica, '--to', path.join(c.dir, `exp-to-${first}.img`)])
    assert.equal(again.code, 2, 'an existing file is never overwritten')
    assert.match(again.stderr, /never overwrites/)

    // --at a date: the newest point at or before it.
    const list = await points(d)
    const byTime = path.join(c.dir, 'exp-by-time.img')
    const r = await c.vdrep(['export', d.replica, '--at', list[1].time, '--to', byTime, '--json'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(json<{seq: number}>(r).seq, list[1].seq)
    const tooOld = await c.vdrep(['export', d.replica, '--at', '2001-01-01T00:00Z', '--to', path.join(c.dir, 'never.img')])
    assert.equal(tooOld.code, 1, tooOld.stderr)
    assert.match(tooOld.stderr, /has no point at or before/)
    const bad = await c.vdrep(['export', d.replica, '--at', 'yesterday', '--to', path.join(c.dir, 'never.img')])
    assert.equal(bad.code, 2, bad.stderr)

    // Retention keeps the points the open exports pin, and drops them once they close.
    const set = await c.vdrep(['points', d.replica, '--retention', 'count:1', '--json'])
    assert.equal(set.code, 0, set.stderr)
    const kept = (await points(d)).map((p) => p.seq)
    assert.ok(kept.includes(first) && kept.includes(s1), `pinned points were dropped: kept ${kept}`)
    await nbdcopy(uriOf(d, sockOld), outOld)
    assert.ok(await cmpEqual(outOld, copies.get(first)!), 'the pinned point still reads right after retention merged the others')
    for (const v of [old, now]) assert.equal((await v.stop()).code, 0)
    await fs.access(sockNow).then(
      () => assert.fail('the socket stays after the export ended'),
      () => {},
    )
    await c.vdrep(['points', d.replica, '--retention', 'count:1'])
    assert.deepEqual(
      (await points(d)).map((p) => p.seq),
      [list[0].seq],
      'unpinned, retention drops them',
    )
    await c.untrack(t)
  })

  it('a full sync that rewrites the replica under an open export: the export fails its reads, never serves other bytes', async () => {
    const d = await c.newDisk('exp-fs', 8 * MiB)
    const copy = path.join(c.dir, 'exp-fs-copy.img')
    await fs.copyFile(d.disk, copy)
    const sock = path.join(c.dir, 'exp-fs.nbd')
    const v = await exportAt(d, [], sock)
    // The source changes behind every record (no tracker), and a full sync rewrites the replica in place.
    const fh = await fs.open(d.disk, 'r+')
    for (let off = 0; off < 8 * MiB; off += 2 * MiB) await fh.write(Buffer.alloc(65536, 0xee), 0, 65536, off)
    await fh.close()
    const f = await c.vdrep(['fullsync', d.disk])
    assert.equal(f.code, 0, f.stderr)
    const out = path.join(c.dir, 'exp-fs-out.img')
    const r = await run('nbdcopy', [uriOf(d, sock), out])
    if (r.code === 0) assert.ok(await cmpEqual(out, copy), 'the export served bytes that are not its point')
    else assert.match(r.stderr, /Input\/output error|failed/, r.stderr)
    const after = await v.stop()
    assert.equal(after.code, 0, after.stderr)
    assert.ok(r.code !== 0, 'the point was rewritten under the export: its reads fail')
  })
})
