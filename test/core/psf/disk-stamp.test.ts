import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {settledStat, STAMP_SETTLE_MS, stampDifference, stampOf} from '../../../src/core/psf/disk-stamp.js'
import {tempDir} from '../../helpers/disks.js'

describe('tracker disk stamp (the trust rule on it: test/core/change-record/doubt.test.ts)', () => {
  it('stamps a real file in nanoseconds, and a write changes the stamp', async () => {
    const dir = await tempDir('vdrep-stamp-')
    try {
      const f = path.join(dir, 'd.img')
      await fs.writeFile(f, Buffer.alloc(8192))
      const a = await stampOf(f)
      assert.equal(a.size, 8192)
      assert.equal(typeof a.mtimeNs, 'bigint')
      await new Promise((r) => setTimeout(r, 20))
      const fh = await fs.open(f, 'r+')
      await fh.write(Buffer.from([1]), 0, 1, 100)
      await fh.close()
      const b = await stampOf(f)
      assert.match(stampDifference(a, b) ?? '', /mtime changed/)
      assert.equal(stampDifference(b, b), null)
    } finally {
      await fs.rm(dir, {recursive: true, force: true})
    }
  })

  it('a settled stat of a disk written a moment ago is taken once its mtime is STAMP_SETTLE_MS old', async () => {
    const dir = await tempDir('vdrep-stamp-')
    try {
      const f = path.join(dir, 'd.img')
      await fs.writeFile(f, Buffer.alloc(8192))
      // The first stat reports a write made this millisecond (not the real one: a loaded
      // machine can take longer than STAMP_SETTLE_MS between writeFile and stat).
      let stats = 0
      let firstAt = 0
      const st = await settledStat(async () => {
        stats++
        const real = await stampOf(f)
        if (stats > 1) return real
        firstAt = Date.now()
        return {...real, mtimeNs: BigInt(firstAt) * 1_000_000n}
      })
      const waited = Date.now() - firstAt
      assert.ok(waited >= STAMP_SETTLE_MS - 1, `returned a stat ${waited} ms after the write`)
      assert.equal(stats, 2, 'stat again after the wait')
      assert.notEqual(st.mtimeNs, BigInt(firstAt) * 1_000_000n, 'the second stat is the one returned')
      // An old mtime: one stat, no wait.
      stats = 0
      const t = Date.now()
      await settledStat(() => (stats++, stampOf(f)))
      assert.equal(stats, 1)
      assert.ok(Date.now() - t < STAMP_SETTLE_MS)
    } finally {
      await fs.rm(dir, {recursive: true, force: true})
    }
  })
})
