// Tests of src/core/native/holes.ts: punching, zeroing and seeking through the addon, then
// the fallbacks by forcing them.

import assert from 'node:assert/strict'
import fs from 'node:fs'

import {__forceFallbackForTests, nativeAvailable} from '../../../src/core/native/binding.js'
import * as native from '../../../src/core/native/holes.js'
import {UsageError} from '../../../src/core/errors.js'
import {FdFixtures, isAll, MiB, readAt} from './fd-fixtures.js'

describe('core/native/holes', function () {
  let f: FdFixtures
  before(() => {
    f = new FdFixtures('vdrep-holes-')
  })
  afterEach(() => {
    f.closeAll()
    __forceFallbackForTests(false)
  })
  after(() => f.remove())

  it('rejects bad arguments with UsageError', () => {
    assert.throws(() => native.seekData(-1, 0), UsageError)
    assert.throws(() => native.punchHole(0, 1.5, 1), UsageError)
    assert.throws(() => native.punchHole(0, 0, -1), UsageError)
  })

  describe('with the addon', function () {
    before(function () {
      if (!nativeAvailable) this.skip()
    })

    it('punchHole deallocates the range, keeps the size, reads zeros', () => {
      const file = f.filledFile('punch', 4 * MiB, 0xab)
      const fd = f.open(file)
      const before = fs.fstatSync(fd)
      assert.equal(native.punchHole(fd, MiB, 2 * MiB), true)
      const after = fs.fstatSync(fd)
      assert.equal(after.size, before.size)
      // st_blocks counts 512-byte units: 2 MiB less allocated.
      assert.ok(after.blocks <= before.blocks - (2 * MiB) / 512, `blocks ${before.blocks} -> ${after.blocks}`)
      assert.ok(isAll(readAt(fd, MiB, 2 * MiB), 0))
      assert.ok(isAll(readAt(fd, 0, MiB), 0xab))
      assert.ok(isAll(readAt(fd, 3 * MiB, MiB), 0xab))
    })
    it('punchHole of length 0 is a no-op, an unaligned range zeroes exactly it', () => {
      const fd = f.open(f.filledFile('punch-odd', 64 * 1024, 0x11))
      assert.equal(native.punchHole(fd, 100, 0), true)
      assert.equal(native.punchHole(fd, 1000, 5000), true)
      const all = readAt(fd, 0, 64 * 1024)
      assert.ok(isAll(all.subarray(0, 1000), 0x11))
      assert.ok(isAll(all.subarray(1000, 6000), 0))
      assert.ok(isAll(all.subarray(6000), 0x11))
    })
    it('punchHole on a closed fd throws DiskIoError naming the call', () => {
      const fd = fs.openSync(f.filledFile('punch-bad', 4096, 1), 'r+')
      fs.closeSync(fd)
      assert.throws(
        () => native.punchHole(fd, 0, 4096),
        (err: Error) => {
          assert.equal(err.name, 'DiskIoError')
          assert.match(err.message, /EBADF/)
          return true
        },
      )
    })
    it('zeroRange punches', async () => {
      const fd = f.open(f.filledFile('zero-native', 4 * MiB, 0x5a))
      const before = fs.fstatSync(fd).blocks
      await native.zeroRange(fd, 0, 2 * MiB)
      assert.ok(fs.fstatSync(fd).blocks < before)
      assert.ok(isAll(readAt(fd, 0, 2 * MiB), 0))
      assert.ok(isAll(readAt(fd, 2 * MiB, 2 * MiB), 0x5a))
    })
    it('seekData/seekHole find the data in a sparse file', () => {
      const fd = f.open(f.sparseFile('sparse'), 'r')
      assert.equal(native.seekData(fd, 0), 8 * MiB)
      assert.equal(native.seekHole(fd, 0), 0)
      assert.equal(native.seekData(fd, 8 * MiB + 10), 8 * MiB + 10)
      assert.equal(native.seekHole(fd, 8 * MiB), 9 * MiB)
      assert.equal(native.seekData(fd, 9 * MiB), -1, 'no data after the last extent')
      assert.equal(native.seekHole(fd, 9 * MiB), 9 * MiB)
      assert.equal(native.seekData(fd, 16 * MiB), -1, 'at end of file')
      assert.equal(native.seekHole(fd, 16 * MiB), -1, 'at end of file')
    })
  })

  describe('fallbacks (forced)', () => {
    beforeEach(() => __forceFallbackForTests(true))

    it('punchHole returns false and leaves the data', () => {
      const fd = f.open(f.filledFile('fb-punch', MiB, 0x77))
      assert.equal(native.punchHole(fd, 0, MiB), false)
      assert.ok(isAll(readAt(fd, 0, MiB), 0x77))
    })
    it('zeroRange writes zeros in chunks, across chunk edges, without growing the file', async () => {
      const size = 3 * MiB + 12345
      const fd = f.open(f.filledFile('fb-zero', size, 0x77))
      await native.zeroRange(fd, 100, 2 * MiB + 7)
      const all = readAt(fd, 0, size)
      assert.ok(isAll(all.subarray(0, 100), 0x77))
      assert.ok(isAll(all.subarray(100, 100 + 2 * MiB + 7), 0))
      assert.ok(isAll(all.subarray(100 + 2 * MiB + 7), 0x77))
      // A range running past the end zeroes up to the end and keeps the size, like the punch.
      await native.zeroRange(fd, 3 * MiB, 4 * MiB)
      assert.equal(fs.fstatSync(fd).size, size)
      assert.ok(isAll(readAt(fd, 3 * MiB, 12345), 0))
      await native.zeroRange(fd, 0, 0)
    })
    it('zeroRange reports a write failure as DiskIoError', async () => {
      const fd = f.open(f.filledFile('fb-ro', 4096, 1), 'r')
      await assert.rejects(native.zeroRange(fd, 0, 4096), {name: 'DiskIoError'})
    })
    it('seekData/seekHole treat the whole file as data', () => {
      const fd = f.open(f.sparseFile('fb-sparse'), 'r')
      assert.equal(native.seekData(fd, 0), 0)
      assert.equal(native.seekData(fd, 5), 5)
      assert.equal(native.seekHole(fd, 0), 16 * MiB)
      assert.equal(native.seekData(fd, 16 * MiB), -1)
      assert.equal(native.seekHole(fd, 16 * MiB), -1)
    })
  })
})
