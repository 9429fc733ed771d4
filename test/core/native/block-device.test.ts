// Tests of src/core/native/block-device.ts: the size of a loop device (or of any readable
// disk) through the addon and through `blockdev`. Needs root for losetup; skipped without a device.

import assert from 'node:assert/strict'
import {execFileSync, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import {__forceFallbackForTests, nativeAvailable} from '../../../src/core/native/binding.js'
import * as native from '../../../src/core/native/block-device.js'
import {seekData, seekHole, zeroRange} from '../../../src/core/native/holes.js'
import {UsageError} from '../../../src/core/errors.js'
import {FdFixtures, MiB} from './fd-fixtures.js'

describe('core/native/block-device', function () {
  let f: FdFixtures
  before(() => {
    f = new FdFixtures('vdrep-blockdev-')
  })
  afterEach(() => {
    f.closeAll()
    __forceFallbackForTests(false)
  })
  after(() => f.remove())

  describe('block devices', function () {
    let loop: string | undefined
    let device: string | undefined
    let expected: number | undefined

    before(function () {
      // Best: attach a loop device of known size. Else any readable disk, sized by blockdev.
      const img = path.join(f.dir, 'loop.img')
      fs.writeFileSync(img, '')
      fs.truncateSync(img, 12 * MiB)
      const r = spawnSync('losetup', ['-f', '--show', img], {encoding: 'utf8'})
      if (r.status === 0 && r.stdout.trim() !== '') {
        loop = device = r.stdout.trim()
        expected = 12 * MiB
        return
      }
      for (const candidate of ['/dev/vda', '/dev/sda', '/dev/nvme0n1']) {
        try {
          fs.closeSync(fs.openSync(candidate, 'r'))
          const size = Number(execFileSync('blockdev', ['--getsize64', candidate], {encoding: 'utf8'}).trim())
          if (size > 0) {
            device = candidate
            expected = size
            return
          }
        } catch {
          // not there or not readable
        }
      }
      this.skip()
    })

    after(() => {
      if (loop !== undefined) spawnSync('losetup', ['-d', loop])
    })

    it('blockDeviceSizeOfPath and blockDeviceSize with the addon', function () {
      if (!nativeAvailable) this.skip()
      assert.equal(native.blockDeviceSizeOfPath(device!), expected)
      assert.equal(native.blockDeviceSize(f.open(device!, 'r')), expected)
    })

    it('blockDeviceSizeOfPath and blockDeviceSize with the blockdev fallback', () => {
      __forceFallbackForTests(true)
      assert.equal(native.blockDeviceSizeOfPath(device!), expected)
      assert.equal(native.blockDeviceSize(f.open(device!, 'r')), expected)
    })

    it('seek fallback on a device: everything up to its size is data', () => {
      __forceFallbackForTests(true)
      const fd = f.open(device!, 'r')
      assert.equal(seekData(fd, 4096), 4096)
      assert.equal(seekHole(fd, 0), expected)
      assert.equal(seekData(fd, expected!), -1)
    })

    it('zeroRange on a device: aligned and unaligned ranges read back as zeros, nothing around them changes', async function () {
      if (loop === undefined) this.skip() // writes: only on the loop device made here
      const fd = f.open(loop, 'r+')
      fs.writeSync(fd, Buffer.alloc(4 * MiB, 0xab), 0, 4 * MiB, 0)
      // 1 MiB at 1 MiB: the kernel's zero-out; 1000 bytes at 3 MiB + 7: refused by it (EINVAL), written as zeros.
      await zeroRange(fd, MiB, MiB)
      await zeroRange(fd, 3 * MiB + 7, 1000)
      const back = Buffer.alloc(4 * MiB)
      fs.readSync(fd, back, 0, back.length, 0)
      const want = Buffer.alloc(4 * MiB, 0xab)
      want.fill(0, MiB, 2 * MiB)
      want.fill(0, 3 * MiB + 7, 3 * MiB + 1007)
      assert.ok(back.equals(want))
    })

    it('refuses what is not a block device, in both modes', () => {
      const file = f.filledFile('not-a-device', 16, 0)
      for (const fallback of [false, true]) {
        __forceFallbackForTests(fallback)
        assert.throws(
          () => native.blockDeviceSizeOfPath(file),
          (e: Error) => e instanceof UsageError && e.code === 'NOT_BLOCK_DEVICE',
        )
        assert.throws(() => native.blockDeviceSize(f.open(file, 'r')), UsageError)
        assert.throws(() => native.blockDeviceSizeOfPath(path.join(f.dir, 'missing')), {name: 'DiskIoError'})
      }
    })
  })
})
