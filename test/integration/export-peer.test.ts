// Exports of restore points are for the replica host's owner: another local user can neither
// read an export (`vdrep export`) nor use a test view (`vdrep test start`), over a unix socket
// (made 0600 even in a folder everyone can enter) or over loopback TCP (served only when the
// peer socket belongs to our uid or root). Their nbdinfo, qemu-io and nbdcopy get nothing; the
// owner's work; the replica is untouched.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {fullsync} from '../../src/core/fullsync/client.js'
import {initDisk} from '../../src/core/init.js'
import {makeMixedDisk, tempDir} from '../helpers/disks.js'
import {sha256} from '../helpers/cycle.js'
import {startForeground, type Foreground} from '../helpers/foreground.js'
import {run, runOk} from '../core/tracker/nbd/harness.js'
import {ensureUser} from '../helpers/users.js'

const OTHER_USER = 'vdreptest'
const MiB = 1 << 20

describe('vdrep export and test start: another local user gets nothing', function () {
  this.timeout(120_000)
  let dir: string
  let replica: string
  const views: Foreground[] = []

  before(async function () {
    if (process.getuid?.() !== 0) this.skip() // needs root to run a client as another user
    if (!ensureUser(OTHER_USER)) this.skip()
    dir = await tempDir('vdrep-export-peer-')
    await fs.chmod(dir, 0o755) // the socket's own mode must keep them out, not the folder's
    const disk = path.join(dir, 'vm.img')
    replica = path.join(dir, 'replica.img')
    await makeMixedDisk(disk, 4 * MiB, 'peer', MiB)
    await initDisk(disk, {target: replica, rpoSeconds: 3600, blockSize: 65536})
    await fullsync(disk, {})
  })
  after(async () => {
    for (const v of views) await v.stop('SIGKILL')
    if (dir) await fs.rm(dir, {recursive: true, force: true})
  })

  const asOther = (cmd: string, args: string[]) => run('runuser', ['-u', OTHER_USER, '--', cmd, ...args], 30_000)

  for (const kind of ['export', 'test'] as const) {
    it(`${kind}: unix socket and loopback TCP refuse another user; the owner is served`, async () => {
      const before = await sha256(replica)
      const sock = path.join(dir, `${kind}.nbd`)
      const args = kind === 'export' ? ['export', replica] : ['test', 'start', replica]
      const v = await startForeground([...args, '--nbd', `unix:${sock}`, '--nbd', '127.0.0.1:0'], /^(exporting|testing) point/)
      views.push(v)
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(v.line)?.[1])
      assert.ok(port > 0, v.line)
      for (const uri of [`nbd+unix:///replica.img?socket=${sock}`, `nbd://127.0.0.1:${port}/replica.img`]) {
        const info = await asOther('nbdinfo', [uri])
        assert.notEqual(info.code, 0, `another user saw ${uri}:\n${info.stdout}`)
        const read = await asOther('qemu-io', ['-f', 'raw', '-r', uri, '-c', 'read 0 4096'])
        assert.notEqual(read.code, 0, `another user read ${uri}:\n${read.stdout}`)
        const write = await asOther('qemu-io', ['-f', 'raw', uri, '-c', 'write -P 0x66 0 65536'])
        assert.notEqual(write.code, 0, `another user wrote ${uri}:\n${write.stdout}`)
        await runOk('nbdinfo', [uri]) // the owner (root here)
      }
      const r = await v.stop('SIGTERM')
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stderr, /refused a connection from 127\.0\.0\.1:\d+: uid \d+ may not use this export/)
      assert.equal(await sha256(replica), before, 'the replica is untouched')
    })
  }
})
