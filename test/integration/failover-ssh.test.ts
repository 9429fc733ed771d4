// Failover and failback over real sshd, with qemu-io writing through `vdrep track` on both
// sides: the old primary's tracker is killed -9 with writes unshipped, more writes land on it
// after the failover, the promoted disk is written through its own tracker; the reprotect
// ships one delta of the union (never the disk), both ends are `cmp`-equal, and a planned
// failover back plus a reprotect returns to the first direction.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json} from '../helpers/cli.js'
import {seededBytes} from '../helpers/disks.js'
import {freePort} from '../helpers/sshd.js'
import {cmpEqual, qemuIo, Serve, sha256, SshCycle, type SshDisk} from '../helpers/cycle.js'
import {startTracker} from '../core/tracker/tracker-helpers.js'
import {readReplicaState} from '../../src/core/receiver/replica-state.js'
import {openPoint} from '../../src/core/points/point-reader.js'
import type {PushResult} from '../../src/core/delta/push.js'
import type {FailoverResult} from '../../src/core/failover/failover.js'
import type {ReprotectResult} from '../../src/core/failover/reprotect.js'

const MiB = 1 << 20
const BS = 64 * 1024
const SIZE = 64 * MiB

/** qemu-io writes of `len` bytes at each offset; the blocks they touch. */
async function writeAt(uri: string, offsets: number[], len: number, pattern: number): Promise<number[]> {
  await qemuIo(
    uri,
    offsets.map((o) => `write -P ${pattern} ${o} ${len}`),
  )
  return blocksOf(offsets, len)
}

function blocksOf(offsets: number[], len: number): number[] {
  const s = new Set<number>()
  for (const o of offsets) for (let b = Math.floor(o / BS); b * BS < o + len; b++) s.add(b)
  return [...s]
}

async function writeDirect(file: string, offsets: number[], len: number, seed: string): Promise<number[]> {
  const fh = await fs.open(file, 'r+')
  try {
    for (const o of offsets) await fh.write(seededBytes(`${seed}:${o}`, len), 0, len, o)
  } finally {
    await fh.close()
  }
  return blocksOf(offsets, len)
}

describe('failover and failback over ssh (qemu-io through the trackers)', function () {
  this.timeout(300_000)
  let c: SshCycle
  /** The old primary host's receiver: its root holds the primary disks. */
  let back: Serve

  before(async () => {
    c = await SshCycle.start()
    back = new Serve(c.dir, [await freePort(), await freePort()])
    await back.start()
  })
  after(async () => {
    await back?.stop()
    await c?.stop()
  })

  /** The flags that reach a host over the harness' sshd, for the receiver `s`. */
  const reach = (s: Serve) => [
    '--known-hosts',
    c.sshd.knownHostsFile,
    '--identity',
    c.sshd.clientKey.path,
    '--fullsync-port',
    String(s.ports[0]),
    '--delta-port',
    String(s.ports[1]),
    '--serve-command',
    'false',
  ]

  it('round trip with unshipped writes (tracker killed -9) and writes on both sides: the union travels, both ends equal, and back again', async () => {
    const d: SshDisk = await c.newDisk('rt', SIZE)
    let t = await c.track(d)
    await writeAt(d.uri, [0, 5 * MiB, 9 * MiB + 4096], 128 * 1024, 0x11)
    const p1 = json<PushResult>(await c.vdrep(['push', d.disk, '--json']))
    assert.equal(p1.mode, 'delta')
    // Unshipped at the failover: written through the tracker, which is then killed -9.
    const unshipped = await writeAt(d.uri, [12 * MiB, 20 * MiB + 512, 33 * MiB], 64 * 1024, 0x22)
    await t.stop('SIGKILL')
    const fo = await c.vdrep(['failover', d.replica, '--force', '--json', '--to', c.target(d.disk), ...reach(back)])
    assert.equal(fo.code, 0, fo.stderr)
    const f = json<FailoverResult>(fo)
    assert.equal(f.planned, false)
    assert.ok(f.lossWindowSeconds >= 0)
    // Written on the old primary after the failover, with no tracker (found by its local check).
    const after = await writeDirect(d.disk, [40 * MiB, 41 * MiB + 100], 8192, 'after-failover')
    // The old primary is fenced, flags or not, and the promoted disk is not touched.
    const sum = await sha256(d.replica)
    for (const args of [
      ['push', d.disk],
      ['push', d.disk, '--take-over-replica', '--discard-replica-changes'],
      ['fullsync', d.disk, '--take-over-replica', '--discard-replica-changes'],
    ]) {
      const x = await c.vdrep(args)
      assert.equal(x.code, 12, `${args.join(' ')}: ${x.stdout}${x.stderr}`)
    }
    assert.equal(await sha256(d.replica), sum)
    assert.equal((await c.vdrep(['status', d.disk, '--check'])).code, 12)

    // The VM runs on the promoted disk, through its own tracker, at once, and goes on running through the reprotect.
    const rsock = path.join(c.dir, 'rt-promoted.nbd')
    const rt = await startTracker(d.replica, ['--nbd', `unix:${rsock}`])
    const ruri = `nbd+unix:///rt.img?socket=${rsock}`
    const dr = await writeAt(ruri, [1 * MiB, 12 * MiB, 50 * MiB + 8192], 96 * 1024, 0x33)

    const oldCopy = path.join(c.dir, 'rt-old.img')
    await fs.copyFile(d.disk, oldCopy)
    // The reprotect runs while the promoted disk's tracker serves it (the owed blocks are marked through it).
    const rp = await c.vdrep(['reprotect', d.replica, '--json'])
    assert.equal(rp.code, 0, rp.stdout + rp.stderr)
    assert.equal((await rt.stop('SIGTERM')).code, 0)
    const r = json<ReprotectResult>(rp)
    const union = new Set([...unshipped, ...after, ...dr]).size
    assert.equal(r.push.mode, 'delta')
    assert.ok(r.owedBlocks >= new Set([...unshipped, ...after]).size, `owed ${r.owedBlocks}`)
    assert.ok(r.push.blocks <= union * 1.1, `${r.push.blocks} blocks shipped for a union of ${union}`)
    assert.ok(r.push.bytesSent <= union * BS * 1.1, `${r.push.bytesSent} bytes for ${union} blocks`)
    assert.ok(r.push.bytesSent < SIZE / 10, 'never the disk')
    assert.ok(await cmpEqual(d.disk, d.replica), 'the old primary equals the promoted disk')
    // The old primary's own writes are a restore point on it.
    const st = (await readReplicaState(d.disk)).state
    assert.ok(st)
    const pt = await openPoint(d.disk, st.lastSeq - 1)
    try {
      assert.ok((await pt.read(0, SIZE)).equals(await fs.readFile(oldCopy)))
    } finally {
      await pt.close()
    }

    // Planned failover back: final push from the DR side, failover on the primary host, reprotect.
    const pf = await c.vdrep(['push', d.replica, '--final'])
    assert.equal(pf.code, 0, pf.stderr)
    const fb = await c.vdrep(['failover', d.disk, '--planned', '--to', c.target(d.replica), ...reach(c.serve)])
    assert.equal(fb.code, 0, fb.stderr)
    t = await c.track(d)
    const again = await writeAt(d.uri, [3 * MiB, 60 * MiB], 64 * 1024, 0x44)
    await c.untrack(t)
    const rp2 = json<ReprotectResult>(await c.vdrep(['reprotect', d.disk, '--json']))
    assert.equal(rp2.push.mode, 'delta')
    assert.equal(rp2.owedBlocks, 0)
    assert.equal(rp2.push.blocks, again.length)
    assert.ok(await cmpEqual(d.disk, d.replica))
    // The first direction again: tracked writes, plain deltas.
    t = await c.track(d)
    const last = await writeAt(d.uri, [7 * MiB], 4096, 0x55)
    const p3 = json<PushResult>(await c.vdrep(['push', d.disk, '--json', '--no-fallback']))
    await c.untrack(t)
    assert.equal(p3.mode, 'delta')
    assert.equal(p3.blocks, last.length)
    assert.ok(await cmpEqual(d.disk, d.replica))
  })
})
