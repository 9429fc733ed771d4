// init refuses a local target that is the disk, its .psf, or a path under the disk, with the
// same rule full sync applies (fullsync/plan.ts checkTargetNotSource).
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {VdrepError} from '../../src/core/errors.js'
import {initDisk} from '../../src/core/init.js'
import {seededBytes, tempDir} from '../helpers/disks.js'

describe('init: a target that is the source', () => {
  it('refuses the disk, its .psf and a path under the disk with TARGET_IS_SOURCE, and writes no .psf', async () => {
    const dir = await tempDir()
    try {
      const disk = path.join(dir, 'd.img')
      await fs.writeFile(disk, seededBytes('target', 1 << 20))
      for (const target of [disk, `${disk}.psf`, `${disk}/replica.img`]) {
        await assert.rejects(
          initDisk(disk, {target, rpoSeconds: 3600, blockSize: 65536}),
          (e: unknown) => e instanceof VdrepError && e.code === 'TARGET_IS_SOURCE',
          target,
        )
        await assert.rejects(fs.stat(`${disk}.psf`), 'a .psf was written')
      }
    } finally {
      await fs.rm(dir, {recursive: true, force: true})
    }
  })
})
