// Tests of src/core/psf/state-location.ts: where a disk's .psf and the files named after it
// live. Beside a regular file; under the state folder, by the disk's real path, for a block
// device (a loop device here) or for any disk once a folder is named.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {diskLockPathFor} from '../../../src/core/locks/disk-lock.js'
import {
  DEFAULT_STATE_DIR,
  disksInStateFolder,
  ensureStateFolder,
  psfPathFor,
  setStateDir,
  STATE_DIR_ENV,
  statePathFor,
} from '../../../src/core/psf/state-location.js'
import {controlSocketPath, cowPathFor, RUN_DIR} from '../../../src/core/tracker/paths.js'
import {tempDir} from '../../helpers/disks.js'
import {attachLoop, detachAll, requireLoopDevices} from '../../helpers/loop-devices.js'

describe('core/psf/state-location', () => {
  let dir: string
  let disk: string
  const savedEnv = process.env[STATE_DIR_ENV]

  beforeEach(async () => {
    dir = await tempDir('vdrep-state-location-')
    disk = path.join(dir, 'vm.img')
    await fs.writeFile(disk, '')
    setStateDir(undefined)
    delete process.env.VDREP_STATE_DIR
  })

  afterEach(async () => {
    setStateDir(undefined)
    if (savedEnv === undefined) delete process.env.VDREP_STATE_DIR
    else process.env[STATE_DIR_ENV] = savedEnv
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('a regular file keeps its state beside it, as init always put it', () => {
    assert.equal(psfPathFor(disk), `${disk}.psf`)
    assert.equal(diskLockPathFor(disk), `${disk}.vdrep.lock`)
    assert.equal(controlSocketPath(disk), `${disk}.vdrep.sock`)
    assert.equal(cowPathFor(disk), `${disk}.vdrep.cow`)
  })

  it('a named folder (--state-dir, else VDREP_STATE_DIR) holds every state file, by the real path', async () => {
    const state = path.join(dir, 'state')
    const link = path.join(dir, 'link.img')
    await fs.symlink(disk, link)
    process.env[STATE_DIR_ENV] = state
    const want = path.join(state, await fs.realpath(disk))
    assert.equal(psfPathFor(disk), `${want}.psf`)
    assert.equal(psfPathFor(link), `${want}.psf`, 'a symlink to the disk finds the same record')
    assert.equal(diskLockPathFor(link), `${want}.vdrep.lock`)
    assert.equal(cowPathFor(disk), `${want}.vdrep.cow`)
    // The flag wins over the environment; a relative folder is taken from the working directory.
    setStateDir('rel-state')
    assert.equal(psfPathFor(disk), `${path.join(path.resolve('rel-state'), await fs.realpath(disk))}.psf`)
  })

  it('a control socket path too long for sun_path goes to /run/vdrep, named by a hash', () => {
    setStateDir(path.join(dir, 'x'.repeat(90)))
    const sock = controlSocketPath(disk)
    assert.equal(path.dirname(sock), RUN_DIR)
    assert.match(path.basename(sock), /^[0-9a-f]{40}\.sock$/)
    assert.equal(statePathFor(disk, '.vdrep.sock').startsWith(path.join(dir, 'x'.repeat(90))), true)
  })

  it('the state folder is made owner-only on first use, and status finds its disks back', async () => {
    const state = path.join(dir, 'state')
    setStateDir(state)
    await ensureStateFolder(disk)
    await fs.writeFile(psfPathFor(disk), 'x')
    const st = await fs.stat(path.dirname(psfPathFor(disk)))
    assert.equal(st.mode & 0o777, 0o700)
    assert.deepEqual(await disksInStateFolder(), [await fs.realpath(disk)])
  })

  describe('block devices', function () {
    before(function () {
      requireLoopDevices(this)
    })
    after(() => detachAll())

    it(`a block device's state is under ${DEFAULT_STATE_DIR} by its path, never in /dev`, async () => {
      const dev = await attachLoop(path.join(dir, 'loop.img'), 4 << 20)
      assert.equal(psfPathFor(dev), path.join(DEFAULT_STATE_DIR, `${dev}.psf`))
      assert.equal(diskLockPathFor(dev), path.join(DEFAULT_STATE_DIR, `${dev}.vdrep.lock`))
      assert.equal(controlSocketPath(dev), path.join(DEFAULT_STATE_DIR, `${dev}.vdrep.sock`))
      assert.equal(cowPathFor(dev), path.join(DEFAULT_STATE_DIR, `${dev}.vdrep.cow`))
      process.env[STATE_DIR_ENV] = path.join(dir, 'state')
      assert.equal(psfPathFor(dev), path.join(dir, 'state', `${dev}.psf`))
    })
  })
})
