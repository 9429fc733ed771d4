// Tests of src/core/locks/kernel-locks.ts: flock and OFD range locks through the addon (two
// open file descriptions exclude each other, in this process or another), and, with the
// fallback forced, that every call refuses with LOCK_UNAVAILABLE instead of answering "locked".

import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'

import {UsageError, VdrepError} from '../../../src/core/errors.js'
import {__forceFallbackForTests, nativeAvailable} from '../../../src/core/native/binding.js'
import * as locks from '../../../src/core/locks/kernel-locks.js'
import {FdFixtures} from '../native/fd-fixtures.js'

const kernelLocksUrl = new URL('../../../src/core/locks/kernel-locks.js', import.meta.url).href

/** In a child process (its own open file description): can it take an exclusive flock? */
function childCanLock(file: string): boolean {
  const script = `
    import fs from 'node:fs'
    const m = await import(${JSON.stringify(kernelLocksUrl)})
    process.stdout.write(String(m.flock(fs.openSync(${JSON.stringify(file)}, 'r'), true, true)))`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {encoding: 'utf8'})
  assert.equal(r.status, 0, r.stderr)
  return r.stdout === 'true'
}

function isLockUnavailable(err: unknown): boolean {
  return err instanceof VdrepError && err.code === 'LOCK_UNAVAILABLE' && err.exitCode === 1 && /no lock that excludes/.test(err.message)
}

describe('core/locks/kernel-locks', function () {
  let f: FdFixtures
  before(() => {
    f = new FdFixtures('vdrep-kernel-locks-')
  })
  afterEach(() => {
    f.closeAll()
    __forceFallbackForTests(false)
  })
  after(() => f.remove())

  it('rejects a bad fd with UsageError', () => {
    assert.throws(() => locks.flock(Number.NaN, true, true), UsageError)
    assert.throws(() => locks.rangeLock(-1, 0, 1, true), UsageError)
  })

  describe('with the addon', function () {
    before(function () {
      if (!nativeAvailable) this.skip()
    })

    it('reports the kernel locks available', () => {
      assert.equal(locks.kernelFileLocksAvailable(), true)
      assert.equal(locks.kernelRangeLocksAvailable(), true)
    })

    it('flock: a second open file description cannot take the lock, in this process or another', () => {
      const file = f.filledFile('lock', 16, 0)
      const a = f.open(file, 'r')
      const b = f.open(file, 'r')
      assert.equal(locks.flock(a, true, true), true)
      assert.equal(locks.flock(a, true, true), true, 'relocking the same description succeeds')
      assert.equal(locks.flock(b, true, true), false)
      assert.equal(locks.flock(b, false, true), false, 'shared conflicts with exclusive too')
      assert.equal(childCanLock(file), false)
      locks.funlock(a)
      assert.equal(locks.flock(b, false, true), true)
      assert.equal(locks.flock(a, false, true), true, 'shared locks coexist')
      assert.equal(childCanLock(file), false, 'exclusive conflicts with shared')
      locks.funlock(a)
      locks.funlock(b)
      assert.equal(childCanLock(file), true)
      assert.equal(locks.flock(a, true, false), true, 'blocking lock when free')
      f.closeAll()
      assert.equal(childCanLock(file), true, 'closing the last fd releases the lock')
    })

    it('rangeLock: overlapping ranges of two descriptions conflict, disjoint ones and flock do not', () => {
      const file = f.filledFile('range', 8192, 0)
      const a = f.open(file, 'r+')
      const b = f.open(file, 'r+')
      assert.equal(locks.rangeLock(a, 0, 4096, true), true)
      assert.equal(locks.rangeLock(b, 100, 10, true), false)
      assert.equal(locks.rangeLock(b, 4096, 4096, true), true, 'a disjoint range is free')
      assert.equal(locks.flock(b, true, true), true, 'flock is a separate lock space')
      locks.rangeUnlock(a, 0, 4096)
      assert.equal(locks.rangeLock(b, 0, 4096, true), true)
    })
  })

  describe('without the addon (forced)', () => {
    beforeEach(() => __forceFallbackForTests(true))

    it('says the kernel locks are unavailable', () => {
      assert.equal(locks.kernelFileLocksAvailable(), false)
      assert.equal(locks.kernelRangeLocksAvailable(), false)
    })

    it('never answers "locked": every call throws LOCK_UNAVAILABLE', () => {
      const file = f.filledFile('fb-lock', 16, 0)
      const a = f.open(file, 'r')
      const b = f.open(file, 'r')
      assert.throws(() => locks.flock(a, true, true), isLockUnavailable)
      assert.throws(() => locks.flock(b, true, true), isLockUnavailable)
      assert.throws(() => locks.funlock(a), isLockUnavailable)
      assert.throws(() => locks.rangeLock(a, 0, 16, true), isLockUnavailable)
      assert.throws(() => locks.rangeUnlock(a, 0, 16), isLockUnavailable)
    })
  })
})
