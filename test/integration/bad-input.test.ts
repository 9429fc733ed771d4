// Bad input gets a clear error, a documented exit code, and changes nothing.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {vdrep, type CliResult} from '../helpers/cli.js'
import {makeMixedDisk, tempDir} from '../helpers/disks.js'

const MiB = 1 << 20

describe('bad input (CLI)', function () {
  this.timeout(60_000)
  let dir: string
  let disk: string
  let replica: string

  beforeEach(async () => {
    dir = await tempDir()
    disk = path.join(dir, 'vm.img')
    replica = path.join(dir, 'replica.img')
    await makeMixedDisk(disk, 4 * MiB)
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  async function nothingWritten() {
    await assert.rejects(fs.stat(replica), 'the replica must not be created')
  }

  function refused(r: CliResult, code: number, message: RegExp) {
    assert.equal(r.code, code, `exit ${r.code}: ${r.stderr}`)
    assert.match(r.stderr, message)
    assert.match(r.stderr, /^vdrep: error: /m)
  }

  it('unknown flag', async () => {
    refused(await vdrep(['fullsync', disk, '--no-such-flag']), 2, /no-such-flag/)
    refused(await vdrep(['init', disk, '--to', replica, '--bogus']), 2, /bogus/)
    await assert.rejects(fs.stat(`${disk}.psf`))
  })

  it('missing disk, a directory, a block size that is not a power of two, a bad RPO', async () => {
    refused(await vdrep(['init', path.join(dir, 'nope.img'), '--to', replica]), 2, /no such disk/)
    refused(await vdrep(['init', dir, '--to', replica]), 2, /is a directory/)
    refused(await vdrep(['init', disk, '--to', replica, '--block-size', '48k']), 2, /power of two/)
    refused(await vdrep(['init', disk, '--to', replica, '--block-size', '8M']), 2, /power of two/)
    refused(await vdrep(['init', disk, '--to', replica, '--rpo', '1m']), 2, /RPO/)
    refused(await vdrep(['fullsync', path.join(dir, 'nope.img')]), 2, /no state file|no such disk/)
    await nothingWritten()
  })

  it('a target that is the source itself or its state file', async () => {
    refused(await vdrep(['init', disk, '--to', disk]), 2, /source disk/)
    refused(await vdrep(['init', disk, '--to', `${disk}.psf`]), 2, /source disk/)
  })

  it('one port for both full sync and deltas is refused (exit 2), no .psf written', async () => {
    refused(await vdrep(['init', disk, '--to', replica, '--fullsync-port', '5000', '--delta-port', '5000']), 2, /both 5000/)
    refused(await vdrep(['init', disk, '--to', replica, '--fullsync-port', '44046']), 2, /both 44046/)
    refused(await vdrep(['init', disk, '--to', replica, '--delta-port', '31031']), 2, /both 31031/)
    await assert.rejects(fs.stat(`${disk}.psf`))
  })

  it('an existing .psf is not overwritten without --force', async () => {
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
    const before = await fs.readFile(`${disk}.psf`)
    refused(await vdrep(['init', disk, '--to', replica]), 2, /already exists/)
    assert.ok(before.equals(await fs.readFile(`${disk}.psf`)))
    assert.equal((await vdrep(['init', disk, '--to', replica, '--force'])).code, 0)
  })

  it('a corrupt, truncated or foreign .psf', async () => {
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
    const psf = `${disk}.psf`
    const good = await fs.readFile(psf)
    const flipped = Buffer.from(good)
    flipped[40] ^= 0xff
    flipped[4096 + 40] ^= 0xff
    await fs.writeFile(psf, flipped)
    refused(await vdrep(['fullsync', disk]), 2, /corrupt/)
    await fs.writeFile(psf, good.subarray(0, 6000))
    refused(await vdrep(['fullsync', disk]), 2, /truncated|corrupt/)
    await fs.writeFile(psf, Buffer.from('this is not a vdrep state file at all, just some text\n'.repeat(200)))
    refused(await vdrep(['fullsync', disk]), 2, /not a vdrep state file/)
    await nothingWritten()
  })

  it('a source that shrank since init', async () => {
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
    await fs.truncate(disk, 2 * MiB)
    refused(await vdrep(['fullsync', disk]), 2, /smaller than/)
    await nothingWritten()
  })

  it('a qcow2 image or a VMDK descriptor given as the disk', async () => {
    const qcow = path.join(dir, 'vm.qcow2')
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', qcow, '16M'])
    const r = await vdrep(['init', qcow, '--to', replica])
    refused(r, 2, /qcow2/)
    assert.match(r.stderr, /qemu-img convert/)
    const vmdk = path.join(dir, 'vm.vmdk')
    await fs.writeFile(vmdk, '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 8192 FLAT "vm-flat.vmdk" 0\n')
    refused(await vdrep(['init', vmdk, '--to', replica]), 2, /VMDK descriptor/)
    await assert.rejects(fs.stat(`${qcow}.psf`))
  })

  it('errors are JSON under --json', async () => {
    const r = await vdrep(['fullsync', path.join(dir, 'nope.img'), '--json'])
    assert.equal(r.code, 2)
    const e = JSON.parse(r.stdout) as {error: string; exitCode: number}
    assert.equal(e.exitCode, 2)
    assert.equal(typeof e.error, 'string')
  })
})
