import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {HeaderFlag, type PsfHeader} from '../../../src/core/psf/header.js'
import {newHeader} from '../../../src/core/psf/psf-file.js'
import {settledStat, STAMP_SETTLE_MS, stampDifference, stampOf, untrustedReason} from '../../../src/core/psf/disk-stamp.js'
import {tempDir} from '../../helpers/disks.js'

function header(flags: number, stamp: {size: number; mtimeNs: bigint; ctimeNs: bigint}): PsfHeader {
  return {
    ...newHeader({diskSize: 8192, blockSize: 4096, hashAlgo: 1, settings: {target: '/x', rpoSeconds: 900, fullsyncPort: 1, deltaPort: 2}}),
    flags,
    sourceSize: stamp.size,
    sourceMtimeNs: stamp.mtimeNs,
    sourceCtimeNs: stamp.ctimeNs,
  }
}

describe('tracker disk stamp (was the disk written while no tracker ran?)', () => {
  const s = {size: 8192, mtimeNs: 1_700_000_000_000_000_001n, ctimeNs: 1_700_000_000_000_000_002n}

  it('after a clean stop, any change of size, mtime or ctime (to the nanosecond) is a reason', () => {
    const h = header(HeaderFlag.CLEAN_SHUTDOWN, s)
    assert.equal(untrustedReason(h, s), null)
    assert.match(untrustedReason(h, {...s, mtimeNs: s.mtimeNs + 1n}) ?? '', /written while no tracker ran \(its mtime changed/)
    assert.match(untrustedReason(h, {...s, ctimeNs: s.ctimeNs + 1n}) ?? '', /its ctime changed/)
    assert.match(untrustedReason(h, {...s, size: 4096}) ?? '', /the disk is 4096 bytes but the \.psf was made for 8192/)
  })

  it('after an unclean stop the bitmap is trusted, whatever the stamp', () => {
    const h = header(0, s)
    assert.equal(untrustedReason(h, {...s, mtimeNs: 5n, ctimeNs: 6n}), null)
    assert.match(untrustedReason(h, {...s, size: 1}) ?? '', /made for 8192/)
  })

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
      let stats = 0
      const st = await settledStat(() => (stats++, stampOf(f)))
      const age = Date.now() - Number(st.mtimeNs / 1_000_000n)
      assert.ok(age >= STAMP_SETTLE_MS - 1, `returned a stat ${age} ms after the write`)
      assert.equal(stats, 2, 'stat again after the wait')
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
