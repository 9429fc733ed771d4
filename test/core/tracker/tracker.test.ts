// The tracker in-process: start and clean stop (flag, stamp, socket, lock), a start that
// fails half-way leaves the record as it found it, the control socket under /run/vdrep for a
// long path, and a request fed one byte at a time.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import {HeaderFlag} from '../../../src/core/psf/header.js'
import {PsfFile, psfPathFor} from '../../../src/core/psf/psf-file.js'
import {TrackerControlClient} from '../../../src/core/tracker/control-client.js'
import {stampOf} from '../../../src/core/psf/disk-stamp.js'
import {controlSocketPath} from '../../../src/core/tracker/paths.js'
import {Tracker} from '../../../src/core/tracker/tracker.js'
import {initDisk as initByCli, MiB} from './tracker-helpers.js'
import {tempDir} from '../../helpers/disks.js'
import {runOk} from './nbd/harness.js'

describe('tracker (in-process)', function () {
  this.timeout(60_000)
  let dir: string
  let disk: string

  beforeEach(async () => {
    dir = await tempDir('vdrep-tracker-')
    disk = path.join(dir, 'd.img')
    await fs.writeFile(disk, '')
    await fs.truncate(disk, 4 * MiB)
    await fs.mkdir(path.join(dir, 'r'))
    await initByCli(disk, path.join(dir, 'r', 'd.img'))
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  const header = async () => {
    const psf = await PsfFile.open(psfPathFor(disk), false)
    await psf.close()
    return psf.header
  }

  it("start clears CLEAN_SHUTDOWN; a clean stop sets it with the disk's stamp, removes the socket and frees the lock", async () => {
    const sock = path.join(dir, 'nbd.sock')
    const t = await Tracker.start(disk, {listen: [`unix:${sock}`]})
    assert.equal((await header()).flags & HeaderFlag.CLEAN_SHUTDOWN, 0)
    assert.equal(t.started.controlSocket, `${disk}.vdrep.sock`)
    assert.equal(t.started.blockCount, 64)
    await runOk('qemu-io', ['-f', 'raw', `nbd+unix:///d.img?socket=${sock}`, '-c', 'write -P 1 0 100'])
    const st = t.status()
    assert.equal(st.writes, 1)
    assert.equal(st.dirtyBlocks, 1)
    assert.equal(st.pendingBlocks, 1)
    assert.equal(st.bytesPending, 65536)
    const stopped = await t.stop()
    assert.equal(stopped.clean, true)
    assert.equal(stopped.writes, 1)
    assert.equal(stopped.newlyDirtied, 1)
    const h = await header()
    assert.ok(h.flags & HeaderFlag.CLEAN_SHUTDOWN)
    const now = await stampOf(disk)
    assert.deepEqual({size: h.sourceSize, mtimeNs: h.sourceMtimeNs, ctimeNs: h.sourceCtimeNs}, now)
    await assert.rejects(fs.stat(`${disk}.vdrep.sock`), /ENOENT/)
    assert.equal(await t.stop(), await t.stop(), 'stop is idempotent')
    const again = await Tracker.start(disk, {listen: [`unix:${sock}`]})
    await again.stop()
  })

  it('a start that fails half-way (a socket path that is not a socket) leaves the header as it was', async () => {
    const first = await Tracker.start(disk, {listen: [`unix:${path.join(dir, 'a.sock')}`]})
    await first.stop()
    const before = await header()
    assert.ok(before.flags & HeaderFlag.CLEAN_SHUTDOWN)
    await assert.rejects(Tracker.start(disk, {listen: ['8.8.8.8:10809']}), /refusing to serve NBD on 8\.8\.8\.8/)
    await fs.writeFile(path.join(dir, 'file.sock'), 'not a socket')
    await assert.rejects(Tracker.start(disk, {listen: [`unix:${path.join(dir, 'file.sock')}`]}), /exists and is not a socket/)
    const after = await header()
    assert.equal(after.flags, before.flags)
    assert.equal(after.sourceMtimeNs, before.sourceMtimeNs)
    // and the locks were released
    const t = await Tracker.start(disk, {listen: [`unix:${path.join(dir, 'a.sock')}`]})
    await t.stop()
  })

  it('a long disk path puts the control socket under /run/vdrep; clients find it by the disk path', async function () {
    const deep = path.join(dir, 'x'.repeat(60), 'y'.repeat(40))
    await fs.mkdir(deep, {recursive: true})
    const longDisk = path.join(deep, 'd.img')
    await fs.rename(disk, longDisk)
    await fs.rename(psfPathFor(disk), psfPathFor(longDisk))
    let t: Tracker
    try {
      t = await Tracker.start(longDisk, {listen: [`unix:${path.join(dir, 'n.sock')}`]})
    } catch (err) {
      if (/\/run\/vdrep/.test(String(err))) this.skip() // not allowed to create /run/vdrep here
      throw err
    }
    try {
      assert.equal(t.started.controlSocket, controlSocketPath(longDisk))
      assert.match(t.started.controlSocket, /^\/run\/vdrep\//)
      assert.equal((await fs.stat(t.started.controlSocket)).mode & 0o777, 0o600)
      const c = await TrackerControlClient.connect(longDisk)
      assert.equal((await c.status()).disk, longDisk)
      await c.close()
    } finally {
      await t.stop()
    }
    await assert.rejects(fs.stat(t.started.controlSocket), /ENOENT/)
  })

  it('a request fed one byte at a time is answered; a request split across frames in one write too', async () => {
    const t = await Tracker.start(disk, {listen: [`unix:${path.join(dir, 'n.sock')}`]})
    try {
      const req = Buffer.from('56445443020100000f000000000000007b226f70223a22737461747573227d', 'hex')
      const s = net.connect({path: `${disk}.vdrep.sock`})
      await new Promise((r) => s.once('connect', r))
      let got = Buffer.alloc(0)
      s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])))
      for (const byte of req) {
        s.write(Buffer.from([byte]))
        await new Promise((r) => setTimeout(r, 1))
      }
      s.write(Buffer.concat([req, req])) // two at once
      for (let i = 0; i < 100; i++) {
        if (got.toString('latin1').split('"pid"').length === 4) break
        await new Promise((r) => setTimeout(r, 10))
      }
      assert.equal(got.toString('latin1').split('"pid"').length - 1, 3, got.toString('latin1'))
      assert.equal(got.subarray(0, 6).toString('hex'), '564454430202')
      s.destroy()
    } finally {
      await t.stop()
    }
  })
})
