// `vdrep config`: settings changed in place keep the change record (the next push is a delta of
// exactly the changed blocks, over SSH with a new identity, known_hosts, RPO and receiver
// ports); a new target resets the replica binding (a full sync that says why, the old replica
// untouched, and refused as another source's if named again); while a tracker runs, the change
// goes through its control socket and the tracker goes on recording.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, vdrep} from '../helpers/cli.js'
import {cmpEqual, MiB, qemuIo, Serve, sha256, SshCycle} from '../helpers/cycle.js'
import {makeMixedDisk, scribbleBlocks, tempDir} from '../helpers/disks.js'
import {markChanged} from '../helpers/change-record.js'
import {freePort} from '../helpers/sshd.js'
import {PsfFile, psfPathFor} from '../../src/core/psf/psf-file.js'
import {HeaderFlag, type PsfHeader} from '../../src/core/psf/header.js'
import type {PushResult} from '../../src/core/delta/push.js'
import type {SettingsChange} from '../../src/core/settings/change.js'

const BS = 64 * 1024

async function header(disk: string): Promise<PsfHeader> {
  const psf = await PsfFile.open(psfPathFor(disk), false)
  try {
    return psf.header
  } finally {
    await psf.close()
  }
}

describe('vdrep config: settings changed in place', function () {
  this.timeout(180_000)

  describe('over SSH', () => {
    let c: SshCycle
    before(async () => {
      c = await SshCycle.start()
    })
    after(async () => {
      await c?.stop()
    })

    it('a new RPO, identity, known_hosts and receiver ports keep the next push a delta of exactly the changed blocks', async () => {
      const d = await c.newDisk('web', 8 * MiB)
      const before = await header(d.disk)
      const set = async (...args: string[]) => {
        const r = await c.vdrep(['config', d.disk, ...args, '--json'])
        assert.equal(r.code, 0, r.stderr)
        const change = json<SettingsChange>(r)
        assert.equal(change.rebound, false, `${args[0]} keeps the replica`)
        return change
      }
      assert.deepEqual((await set('rpo', '5m')).changed, [{key: 'rpo', from: '15m', to: '5m'}])
      // The identity and known_hosts files moved: a push must use the new ones.
      const key = path.join(c.dir, 'moved_key')
      const known = path.join(c.dir, 'moved_known_hosts')
      await fs.copyFile(c.sshd.clientKey.path, key)
      await fs.chmod(key, 0o600)
      await fs.copyFile(c.sshd.knownHostsFile, known)
      await set('identity', key)
      await set('known-hosts', known)
      // The receiver moved to other ports.
      await c.serve.stop()
      const moved = new Serve(c.root, [await freePort(), await freePort()])
      await moved.start()
      try {
        await set('fullsync-port', String(moved.ports[0]))
        await set('delta-port', String(moved.ports[1]))
        const h = await header(d.disk)
        assert.equal(h.settings.rpoSeconds, 300)
        assert.deepEqual(h.settings.ssh?.identityFiles, [key])
        assert.equal(h.settings.ssh?.knownHostsFile, known)
        assert.ok(h.replicaId.equals(before.replicaId) && h.lastCommit.equals(before.lastCommit) && h.generation === before.generation, 'binding kept')
        assert.equal(h.flags & HeaderFlag.NEEDS_FULL_SYNC, 0)
        // The old files are gone: only the new settings can log in.
        await fs.rename(c.sshd.clientKey.path, `${c.sshd.clientKey.path}.away`)
        try {
          const changed = await scribbleBlocks(d.disk, BS, 5, 'after-config')
          await markChanged(d.disk, changed)
          const p = await c.vdrep(['push', d.disk, '--json'])
          assert.equal(p.code, 0, p.stderr)
          const r = json<PushResult>(p)
          assert.equal(r.mode, 'delta', 'not a full sync')
          assert.equal(r.blocks, changed.length, 'only the changed blocks')
          assert.ok(await cmpEqual(d.disk, d.replica))
        } finally {
          await fs.rename(`${c.sshd.clientKey.path}.away`, c.sshd.clientKey.path)
        }
      } finally {
        await moved.stop()
        await c.serve.start()
      }
      // A bad value changes nothing.
      const bad = await c.vdrep(['config', d.disk, 'delta-port', String((await header(d.disk)).settings.fullsyncPort)])
      assert.equal(bad.code, 2)
      assert.match(bad.stderr, /the full-sync port and the delta port are both/)
      const unknown = await c.vdrep(['config', d.disk, 'block-size', '4k'])
      assert.equal(unknown.code, 2)
      assert.match(unknown.stderr, /block-size shapes the change record itself/)
    })
  })

  describe('a local replica', () => {
    let dir: string
    let disk: string
    let replica: string
    beforeEach(async () => {
      dir = await tempDir()
      disk = path.join(dir, 'vm.img')
      replica = path.join(dir, 'r1', 'vm.img')
      await fs.mkdir(path.join(dir, 'r1'))
      await fs.mkdir(path.join(dir, 'r2'))
      await makeMixedDisk(disk, 8 * MiB, 'cfg')
      assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
      assert.equal((await vdrep(['fullsync', disk])).code, 0)
    })
    afterEach(async () => {
      await fs.rm(dir, {recursive: true, force: true})
    })

    it('a new target makes the next push a full sync that says why; the old replica is untouched and then refused', async () => {
      await markChanged(disk, await scribbleBlocks(disk, BS, 4, 'moving'))
      const oldSum = await sha256(replica)
      const other = path.join(dir, 'r2', 'vm.img')
      const r = await vdrep(['config', disk, 'target', other])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /target .*r1\/vm\.img -> .*r2\/vm\.img/)
      assert.match(r.stdout, /the next push is a full sync/)
      const s = json<{disks: Array<{state: string; reason: string}>}>(await vdrep(['status', disk, '--json'])).disks[0]
      assert.equal(s.state, 'Full sync needed')
      assert.match(s.reason, /the target changed to .*r2\/vm\.img/)
      const nf = await vdrep(['push', disk, '--no-fallback'])
      assert.equal(nf.code, 4, 'never a delta to the new replica')
      const p = await vdrep(['push', disk, '--json'])
      assert.equal(p.code, 0, p.stderr)
      const out = json<PushResult>(p)
      assert.equal(out.mode, 'fullsync')
      assert.match(out.reason ?? '', /the target changed to .*r2\/vm\.img \(vdrep config\)/)
      assert.ok(await cmpEqual(disk, other))
      assert.equal(await sha256(replica), oldSum, 'the old replica was not written')
      // Back to the old replica: it was bound to the old binding, so it is another source's now.
      assert.equal((await vdrep(['config', disk, 'target', replica])).code, 0)
      const back = await vdrep(['push', disk])
      assert.equal(back.code, 10, `refused as another source's replica: ${back.stderr}`)
      assert.equal(await sha256(replica), oldSum, 'still not written')
      // A login or port change on an SSH target keeps the binding; on a local target it is refused.
      const u = await vdrep(['config', disk, 'ssh-user', 'backup'])
      assert.equal(u.code, 2)
      assert.match(u.stderr, /is a local path: it has no SSH login/)
    })

    it('while a tracker runs, the change goes through its control socket; the tracker records on', async function () {
      const sock = path.join(dir, 'vm.nbd')
      const {startTracker} = await import('../core/tracker/tracker-helpers.js')
      const t = await startTracker(disk, ['--nbd', `unix:${sock}`])
      try {
        const r = await vdrep(['config', disk, 'rpo', '30m', '--json'])
        assert.equal(r.code, 0, r.stderr)
        assert.equal(json<SettingsChange>(r).via, 'tracker')
        assert.equal((await header(disk)).settings.rpoSeconds, 1800)
        const hook = await vdrep(['config', disk, 'pre-hook', `touch ${path.join(dir, 'hook-ran')}`])
        assert.equal(hook.code, 0, hook.stderr)
        await qemuIo(`nbd+unix:///vm.img?socket=${sock}`, ['write -P 0x5a 0 131072', 'write -P 0x5b 1048576 65536', 'flush'])
        const p = await vdrep(['push', disk, '--json'])
        assert.equal(p.code, 0, p.stderr)
        const out = json<PushResult>(p)
        assert.equal(out.mode, 'delta')
        assert.equal(out.blocks, 3, 'exactly the three written blocks')
        await fs.stat(path.join(dir, 'hook-ran')) // the hook set in place ran
        assert.ok(await cmpEqual(disk, replica))
        assert.equal(t.child.exitCode, null, 'the tracker still runs')
      } finally {
        const e = await t.stop('SIGTERM')
        assert.equal(e.code, 0, e.stderr)
      }
      assert.equal((await header(disk)).settings.rpoSeconds, 1800, 'the tracker kept the change')
    })
  })
})
