// Issue 18 cases 1 and 3 (local target, CLI): a .psf knows its disk. A `cp -a` clone of a disk
// and its .psf, a .psf copied from another disk, and a disk file replaced with `mv` under a
// running tracker are refused with PSF_NOT_THIS_DISK (exit 2), and the replica the record
// names is never written; the original keeps replicating.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {json, vdrep} from '../helpers/cli.js'
import {filesEqual, makeMixedDisk, scribbleBlocks, tempDir} from '../helpers/disks.js'
import {markChanged} from '../helpers/change-record.js'
import {initDisk, MiB, startTracker, type RunningTracker} from '../core/tracker/tracker-helpers.js'
import type {PushResult} from '../../src/core/delta/push.js'

const run = promisify(execFile)
const BS = 64 * 1024
const SIZE = 8 * MiB

async function digestOf(file: string): Promise<string> {
  return crypto
    .createHash('sha256')
    .update(await fs.readFile(file))
    .digest('hex')
}

describe('a .psf knows its disk (issue 18 cases 1 and 3, local target)', function () {
  this.timeout(120_000)
  let dir: string
  let disk: string
  let replica: string
  let tracker: RunningTracker | undefined

  beforeEach(async () => {
    dir = await tempDir('vdrep-ident-')
    await fs.mkdir(path.join(dir, 'vm'))
    await fs.mkdir(path.join(dir, 'replica'))
    disk = path.join(dir, 'vm', 'web.img')
    replica = path.join(dir, 'replica', 'web.img')
    await makeMixedDisk(disk, SIZE, 'ident')
    await initDisk(disk, replica)
    const fs0 = await vdrep(['fullsync', disk])
    assert.equal(fs0.code, 0, fs0.stderr)
  })
  afterEach(async () => {
    if (tracker && tracker.child.exitCode === null && tracker.child.signalCode === null) await tracker.stop('SIGKILL')
    tracker = undefined
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('a cp -a clone of disk and .psf: push, fullsync, track and scan refuse it; the replica is untouched; the original still ships its changes', async () => {
    const clone = path.join(dir, 'clone')
    await fs.mkdir(clone)
    await run('cp', ['-a', disk, `${disk}.psf`, `${clone}/`])
    const cloneDisk = path.join(clone, 'web.img')
    await scribbleBlocks(cloneDisk, BS, 5, 'clone')
    const before = await digestOf(replica)

    const p = await vdrep(['push', cloneDisk])
    assert.equal(p.code, 2, p.stderr)
    assert.match(p.stderr, /PSF_NOT_THIS_DISK|belongs to another disk/)
    assert.match(p.stderr, /vdrep init/)
    assert.match(p.stderr, /nothing was sent/)
    for (const args of [
      ['push', cloneDisk, '--json'],
      ['fullsync', cloneDisk],
      ['track', cloneDisk, '--scan'],
    ]) {
      const r = await vdrep(args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}${r.stdout}`)
    }
    const pj = await vdrep(['push', cloneDisk, '--json'])
    assert.match(pj.stdout + pj.stderr, /PSF_NOT_THIS_DISK/)
    assert.equal(await digestOf(replica), before, "the original's replica was not written")

    const st = await vdrep(['status', cloneDisk, '--json'])
    assert.match(st.stdout, /PSF_NOT_THIS_DISK/)
    assert.notEqual((await vdrep(['status', cloneDisk, '--check'])).code, 0)

    // The original: its next push is a delta of exactly its own changes.
    const changed = await scribbleBlocks(disk, BS, 3, 'original')
    await markChanged(disk, changed)
    const r = await vdrep(['push', disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<PushResult>(r)
    assert.equal(out.mode, 'delta')
    assert.equal(out.blocks, changed.length)
    assert.ok(await filesEqual(disk, replica))

    // `vdrep init` gives the copy its own record (and replica): then it is its own disk.
    const cloneReplica = path.join(dir, 'replica', 'clone.img')
    const ri = await vdrep(['init', cloneDisk, '--force', '--to', cloneReplica])
    assert.equal(ri.code, 0, ri.stderr)
    assert.equal((await vdrep(['push', cloneDisk])).code, 0)
    assert.ok(await filesEqual(cloneDisk, cloneReplica))
    assert.ok(await filesEqual(disk, replica), "the original's replica is still the original")
  })

  it('a .psf copied from another disk (cp b.img.psf a.img.psf) is refused; neither replica is written', async () => {
    const other = path.join(dir, 'vm', 'db.img')
    const otherReplica = path.join(dir, 'replica', 'db.img')
    await makeMixedDisk(other, SIZE, 'other')
    await initDisk(other, otherReplica)
    assert.equal((await vdrep(['fullsync', other])).code, 0)
    const before = [await digestOf(replica), await digestOf(otherReplica)]
    await fs.copyFile(`${other}.psf`, `${disk}.psf`)
    await scribbleBlocks(disk, BS, 2, 'swap')
    for (const args of [
      ['push', disk],
      ['fullsync', disk],
      ['track', disk, '--scan'],
    ]) {
      const r = await vdrep(args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /belongs to another disk: it was made for .*db\.img/)
    }
    assert.deepEqual([await digestOf(replica), await digestOf(otherReplica)], before)
  })

  it('the disk file replaced with mv while the tracker runs: push refuses, the replica is untouched, the clean stop records no stamp of the new file', async () => {
    const sock = path.join(dir, 'nbd.sock')
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    const before = await digestOf(replica)
    const replacement = path.join(dir, 'vm', 'other.img')
    await makeMixedDisk(replacement, SIZE, 'replacement')
    await fs.rename(replacement, disk)
    const r = await vdrep(['push', disk])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /replaced while its tracker runs/)
    assert.equal((await vdrep(['fullsync', disk])).code, 2)
    assert.equal(await digestOf(replica), before)
    const stop = await tracker.stop('SIGTERM')
    tracker = undefined
    assert.equal(stop.code, 0, stop.stderr)
    const after = await vdrep(['push', disk])
    assert.equal(after.code, 2, after.stderr)
    assert.match(after.stderr, /belongs to another disk/)
    assert.equal(await digestOf(replica), before)
  })
})
