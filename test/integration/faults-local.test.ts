// Resource faults against a local replica: a replica file system that fills up, a source
// block that cannot be read. Each: a clear error, nothing reported as success, nothing lost.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, vdrep} from '../helpers/cli.js'
import {filesEqual, makeMixedDisk, seededBytes, tempDir} from '../helpers/disks.js'
import {DiskIoError} from '../../src/core/errors.js'
import {Region} from '../../src/core/psf/layout.js'
import {PsfFile} from '../../src/core/psf/psf-file.js'
import {decodeReplicaState} from '../../src/core/receiver/replica-state.js'
import {blockRange, markChanged} from '../helpers/change-record.js'
import {fullsync} from '../../src/core/fullsync/client.js'
import {push} from '../../src/core/delta/push.js'

const MiB = 1 << 20
const BS = 64 * 1024

async function replicaState(replica: string) {
  return decodeReplicaState(await fs.readFile(`${replica}.vdrep`))
}

async function markAll(disk: string, first: number, count: number): Promise<void> {
  await markChanged(disk, blockRange(first, count))
}

async function activeCount(disk: string): Promise<number> {
  const psf = await PsfFile.open(`${disk}.psf`)
  const {bitmap} = await psf.readBitmap(Region.ACTIVE)
  await psf.close()
  return bitmap.count()
}

describe('resource faults (local replica)', function () {
  this.timeout(120_000)
  let dir: string
  let disk: string
  let mnt: string
  let replica: string

  beforeEach(async () => {
    dir = await tempDir()
    disk = path.join(dir, 'vm.img')
    mnt = path.join(dir, 'small')
    replica = path.join(mnt, 'vm.img')
    await fs.mkdir(mnt)
  })
  afterEach(async () => {
    try {
      execFileSync('umount', [mnt], {stdio: 'ignore'})
    } catch {
      // not mounted
    }
    await fs.rm(dir, {recursive: true, force: true})
  })

  function mountTmpfs(size: string): void {
    if (process.getuid?.() !== 0) return
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', mnt])
  }

  it('a replica file system that fills up mid-sync: exit 9, replica marked incomplete, a later run completes', async function () {
    if (process.getuid?.() !== 0) this.skip()
    mountTmpfs('8m')
    await fs.writeFile(disk, seededBytes('full', 24 * MiB))
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
    const r = await vdrep(['fullsync', disk])
    assert.equal(r.code, 9, `exit ${r.code}: ${r.stderr}`)
    assert.match(r.stderr, /no space|no room|full/i)
    assert.doesNotMatch(r.stdout, /proved/)
    assert.equal((await replicaState(replica)).complete, false)
    execFileSync('mount', ['-o', 'remount,size=64m', mnt])
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    assert.ok(await filesEqual(disk, replica))
  })

  it('a bundle that would not fit is refused before anything is written, and its blocks are kept', async function () {
    if (process.getuid?.() !== 0) this.skip()
    mountTmpfs('24m')
    await fs.writeFile(disk, seededBytes('bundle', 16 * MiB))
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    const before = await fs.readFile(replica)
    await fs.writeFile(disk, seededBytes('bundle2', 16 * MiB))
    await markAll(disk, 0, 256)
    const r = await vdrep(['push', disk])
    assert.equal(r.code, 9, `exit ${r.code}: ${r.stderr}`)
    assert.match(r.stderr, /free/)
    assert.ok(before.equals(await fs.readFile(replica)), 'the replica is at its previous point')
    await assert.rejects(fs.stat(`${replica}.vdrep-journal`))
    assert.equal(await activeCount(disk), 256, 'the refused blocks are back in the change record')
  })

  it('an unreadable source block fails the full sync naming the offset; nothing is reported as success', async () => {
    replica = path.join(dir, 'replica.img')
    await makeMixedDisk(disk, 16 * MiB, 'eio')
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
    const bad = 4 * MiB + 4096 // in a data region of the mixed disk (holes are not read, so cannot fail)
    const eio = (pos: number, len: number) =>
      pos <= bad && bad < pos + len ? Object.assign(new Error('EIO: i/o error, read'), {code: 'EIO', errno: -5}) : undefined
    await assert.rejects(fullsync(disk, {sourceReadFault: eio}), (err: Error) => err instanceof DiskIoError && /offset 4198400/.test(err.message))
    assert.equal((await replicaState(replica)).complete, false)
    const psf = await PsfFile.open(`${disk}.psf`)
    assert.equal(psf.header.generation, 0, 'the .psf was not marked synced')
    await psf.close()
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    assert.ok(await filesEqual(disk, replica))
  })

  it('an unreadable block during a push fails it and hands every block back', async () => {
    replica = path.join(dir, 'replica.img')
    await makeMixedDisk(disk, 16 * MiB, 'eio2')
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    await fs.writeFile(disk, seededBytes('eio3', 16 * MiB))
    await markAll(disk, 0, 256)
    const eio = (pos: number) => (pos >= 8 * MiB ? Object.assign(new Error('EIO: i/o error, read'), {code: 'EIO'}) : undefined)
    await assert.rejects(push(disk, {sourceReadFault: eio}), /offset 8388608/)
    assert.equal(await activeCount(disk), 256)
    const out = json<{mode: string; blocks: number}>(await vdrep(['push', disk, '--json']))
    assert.equal(out.mode, 'delta')
    assert.equal(out.blocks, 256)
    assert.ok(await filesEqual(disk, replica))
    assert.equal(BS * 256, 16 * MiB)
  })
})
