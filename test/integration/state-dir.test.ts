// `--state-dir DIR` through the real binary: a regular file's .psf (and its lock) is kept in the
// named folder, and every command that takes a disk finds it there the same way (init,
// fullsync, push, track --scan, status); nothing is put beside the disk. The cron line init
// prints names the folder, and runs through sh.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, vdrep} from '../helpers/cli.js'
import {makeMixedDisk, seededBytes, tempDir} from '../helpers/disks.js'

const MiB = 1 << 20

describe('--state-dir (CLI)', function () {
  this.timeout(60_000)
  let dir: string
  let disk: string
  let replica: string
  let state: string

  beforeEach(async () => {
    dir = await tempDir('vdrep-state-dir-')
    disk = path.join(dir, 'vm.img')
    replica = path.join(dir, 'replica.img')
    state = path.join(dir, 'state')
    await makeMixedDisk(disk, 8 * MiB, 'state-dir', MiB)
  })

  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  const ok = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = await vdrep(args, {env})
    assert.equal(r.code, 0, `vdrep ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`)
    return r
  }

  it('init, fullsync, track --scan, push and status all find the record in the folder; nothing beside the disk', async () => {
    const init = json<{psf: string; cron: string}>(await ok(['init', disk, '--to', replica, '--state-dir', state, '--json']))
    assert.equal(init.psf, path.join(state, `${await fs.realpath(disk)}.psf`))
    await ok(['fullsync', disk, '--state-dir', state])
    const fh = await fs.open(disk, 'r+')
    await fh.write(seededBytes('after the sync', 65536), 0, 65536, 3 * MiB)
    await fh.close()
    await ok(['track', disk, '--scan', '--state-dir', state])
    const push = await ok(['push', disk], {VDREP_STATE_DIR: state})
    assert.match(push.stdout, /committed, 1 blocks?/, push.stdout)
    assert.ok((await fs.readFile(disk)).equals(await fs.readFile(replica)))
    const status = json<{disks: Array<{disk: string; state: string}>}>(await ok(['status', '--json'], {VDREP_STATE_DIR: state}))
    assert.deepEqual(
      status.disks.map((d) => [d.disk, d.state]),
      [[await fs.realpath(disk), 'Not tracking']],
    )
    // Beside the replica: its state, lock and restore points (the replica host's files); beside the disk: nothing.
    assert.deepEqual((await fs.readdir(dir)).sort(), [
      'replica.img',
      'replica.img.vdrep',
      'replica.img.vdrep-points',
      'replica.img.vdrep.lock',
      'state',
      'vm.img',
    ])
    // Without the folder, the record is not found (and not made up): exit 2, nothing written.
    const lost = await vdrep(['push', disk, '--no-fallback', '--json'])
    assert.notEqual(lost.code, 0)
    await assert.rejects(fs.access(`${disk}.psf`))

    // The printed cron line carries the folder: run through sh, its push finds the record.
    assert.ok(init.cron.includes(`--state-dir ${state}`), init.cron)
    const command = init.cron.replace(/^(\S+\s+){5}/, '').replace(/push --if-due/, 'push')
    execFileSync('sh', ['-c', command], {stdio: 'pipe'})
  })
})
