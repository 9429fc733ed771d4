// A full file system on the source host is not "replica full": it exits 1 with LOCAL_FULL and
// names the file, where a full replica file system exits 9 (faults-local.test.ts). Before the
// error registry, any ENOSPC became REPLICA_FULL.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, vdrep} from '../helpers/cli.js'
import {tempDir} from '../helpers/disks.js'

describe('no space left on the source host (CLI)', function () {
  this.timeout(60_000)
  let dir: string
  let mnt: string

  beforeEach(async function () {
    if (process.getuid?.() !== 0) this.skip() // mounting a small tmpfs needs root
    dir = await tempDir()
    mnt = path.join(dir, 'src')
    await fs.mkdir(mnt)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', mnt])
  })
  afterEach(async () => {
    if (!dir) return
    try {
      execFileSync('umount', [mnt], {stdio: 'ignore'})
    } catch {
      // not mounted
    }
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('init on a full source file system: exit 1, LOCAL_FULL naming the .psf, never REPLICA_FULL', async () => {
    const disk = path.join(mnt, 'vm.img')
    const fh = await fs.open(disk, 'w')
    await fh.truncate(4 << 20)
    await fh.close()
    // Fill all but one page: init's lock file (one page) fits, its .psf does not.
    await fs.writeFile(path.join(mnt, 'fill'), Buffer.alloc((1 << 20) - 4096))
    const r = await vdrep(['init', disk, '--to', path.join(dir, 'replica.img'), '--json'])
    assert.equal(r.code, 1, `exit ${r.code}: ${r.stdout} ${r.stderr}`)
    const out = json<{error: string; message: string; exitCode: number}>(r)
    assert.equal(out.error, 'LOCAL_FULL')
    assert.equal(out.exitCode, 1)
    assert.match(out.message, new RegExp(`no space left on this host for ${disk}\\.psf`))
    const plain = await vdrep(['init', disk, '--to', path.join(dir, 'replica.img')])
    assert.equal(plain.code, 1)
    assert.match(plain.stderr, /no space left on this host for .*vm\.img\.psf/)
    assert.doesNotMatch(plain.stderr, /replica (file ?system|is full)|REPLICA_FULL/i)
  })
})
