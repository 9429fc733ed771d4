// The acquisition order of src/core/locks/index.ts as the callers follow it: with both the disk
// lock and the .psf ownership held by others, a tracker, a scan or an init is refused by the
// disk lock (the first in the order), never by the ownership; and a push that finds the disk
// lock free probes the ownership only after taking it. In the reverse order a tracker and a
// push starting together could each take one lock and both fail.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'

import {initDisk} from '../../../src/core/init.js'
import {acquireDiskLock, checkNoUnreachableTracker, TrackerLock} from '../../../src/core/locks/index.js'
import {openRecord} from '../../../src/core/tracker/record.js'
import {FdFixtures} from '../native/fd-fixtures.js'

describe('core/locks: the acquisition order', () => {
  let fx: FdFixtures
  let disk: string
  let psf: string
  before(() => {
    fx = new FdFixtures('vdrep-lock-order-')
  })
  beforeEach(() => {
    disk = fx.filledFile(`disk-${Date.now()}.img`, 65536, 0)
    psf = fx.filledFile(`${path.basename(disk)}.psf`, 16384, 0)
  })
  after(() => fx.remove())

  for (const what of ['tracker', 'scan'] as const) {
    it(`a ${what} takes the disk lock before the .psf ownership`, async () => {
      const owner = await TrackerLock.acquire(disk, psf, 'tracker')
      const diskLock = await acquireDiskLock(disk, 'push')
      try {
        await assert.rejects(
          openRecord(disk, what),
          (e: Error & {exitCode?: number}) => e.exitCode === 3 && /another vdrep process \(pid \d+, push, .*\) is already working on it/.test(e.message),
        )
      } finally {
        await diskLock.release()
        owner.release()
      }
      // And with only the ownership held, it is the ownership that refuses (the disk lock was taken, then given back).
      const owner2 = await TrackerLock.acquire(disk, psf, 'tracker')
      try {
        await assert.rejects(openRecord(disk, what), (e: Error & {exitCode?: number}) => e.exitCode === 3 && /holds the lock on/.test(e.message))
      } finally {
        owner2.release()
      }
      const again = await acquireDiskLock(disk, 'push')
      await again.release()
    })
  }

  it('init takes the disk lock before the ownership of the old .psf', async () => {
    const owner = await TrackerLock.acquire(disk, psf, 'tracker')
    const diskLock = await acquireDiskLock(disk, 'push')
    try {
      await assert.rejects(
        initDisk(disk, {target: path.join(fx.dir, 'replica.img'), force: true, blockSize: 65536, rpoSeconds: 900}),
        /is already working on it/,
      )
    } finally {
      await diskLock.release()
      owner.release()
    }
    assert.equal(
      fs.readFileSync(psf).every((b) => b === 0),
      true,
      'the old .psf was left alone',
    )
  })

  it('the ownership probe of a push refuses while a tracker owns the .psf, and takes nothing', async () => {
    const owner = await TrackerLock.acquire(disk, psf, 'tracker')
    await assert.rejects(checkNoUnreachableTracker(disk, psf), /nothing answers on its control socket/)
    owner.release()
    await checkNoUnreachableTracker(disk, psf)
    const owner2 = await TrackerLock.acquire(disk, psf, 'tracker')
    owner2.release()
  })
})
