// Issue 18 cases 1 and 3 over SSH (real sshd, real `vdrep serve`): a `cp -a` clone of a disk
// and its .psf, and a disk replaced with `mv` under its running tracker, are refused with
// PSF_NOT_THIS_DISK (exit 2) before any connection; the original's replica is never written
// and the original's next push still ships its changes.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {json} from '../helpers/cli.js'
import {cmpEqual, MiB, qemuIo, sha256, SshCycle} from '../helpers/cycle.js'
import {makeMixedDisk, scribbleBlocks} from '../helpers/disks.js'
import type {PushResult} from '../../src/core/delta/push.js'

const run = promisify(execFile)
const BS = 64 * 1024

describe('a .psf knows its disk, over SSH (issue 18 cases 1 and 3)', function () {
  this.timeout(120_000)
  let c: SshCycle

  before(async () => {
    c = await SshCycle.start()
  })
  after(async () => {
    await c?.stop()
  })
  afterEach(async () => {
    await c.killTrackers()
  })

  it('a cp -a clone, changed, is refused by push and fullsync; the replica is unchanged; the original then pushes its changes as a delta', async () => {
    const d = await c.newDisk('web', 8 * MiB)
    const cloneDir = path.join(path.dirname(d.disk), 'clone')
    await fs.mkdir(cloneDir)
    await run('cp', ['-a', d.disk, `${d.disk}.psf`, `${cloneDir}/`])
    const clone = path.join(cloneDir, 'web.img')
    await scribbleBlocks(clone, BS, 4, 'clone')
    const before = await sha256(d.replica)
    for (const args of [
      ['push', clone],
      ['fullsync', clone],
    ]) {
      const r = await c.vdrep(args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /belongs to another disk.*nothing was sent/)
      assert.match(r.stderr, /vdrep init/)
    }
    assert.equal(await sha256(d.replica), before)
    await c.track(d)
    await qemuIo(d.uri, ['write -P 0x5a 0 4096', `write -P 0x5b ${3 * BS} 100`, 'flush'])
    const r = await c.vdrep(['push', d.disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<PushResult>(r)
    assert.equal(out.mode, 'delta')
    assert.equal(out.blocks, 2)
    assert.ok(await cmpEqual(d.disk, d.replica))
  })

  it('the disk replaced with mv under its running tracker: push over SSH refuses, the replica is unchanged', async () => {
    const d = await c.newDisk('mvd', 8 * MiB)
    await c.track(d)
    const before = await sha256(d.replica)
    const replacement = `${d.disk}.new`
    await makeMixedDisk(replacement, 8 * MiB, 'replacement')
    await fs.rename(replacement, d.disk)
    const r = await c.vdrep(['push', d.disk])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /replaced while its tracker runs/)
    assert.equal(await sha256(d.replica), before)
  })
})
