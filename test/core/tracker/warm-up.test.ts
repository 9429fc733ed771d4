// The tracker's warm-up (src/core/tracker/warm-up.ts): it drives thousands of requests through
// the real request path on a scratch export, and writes nothing of the tracked disk, its .psf
// (bitmaps, index, activity log, header beyond the start's own flag) or the record in memory.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {HeaderFlag} from '../../../src/core/psf/header.js'
import {SLOT_SIZE} from '../../../src/core/psf/layout.js'
import {PsfFile, psfPathFor} from '../../../src/core/psf/psf-file.js'
import {Tracker} from '../../../src/core/tracker/tracker.js'
import {DEFAULT_WARM_UP_MS, openScratchExport, warmUp, warmUpCapMs} from '../../../src/core/tracker/warm-up.js'
import * as C from '../../../src/core/tracker/nbd/constants.js'
import type {WarmRequest} from '../../../src/core/tracker/nbd/warm-client.js'
import {seededBytes, tempDir} from '../../helpers/disks.js'
import {runOk} from './nbd/harness.js'
import {initDisk, MiB} from './tracker-helpers.js'

describe('tracker warm-up', function () {
  this.timeout(60_000)
  let dir: string
  let disk: string

  beforeEach(async () => {
    dir = await tempDir('vdrep-warm-up-')
    disk = path.join(dir, 'd.img')
    await fs.writeFile(disk, seededBytes('warm-up disk', 8 * MiB))
    await fs.mkdir(path.join(dir, 'r'))
    await initDisk(disk, path.join(dir, 'r', 'd.img'))
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  const scratchLeft = async () => (await fs.readdir('/dev/shm').catch(() => [] as string[])).filter((f) => f.startsWith(`vdrep-warm-up-${process.pid}-`))

  it('runs hundreds to thousands of requests (writes, reads, a flush) through a scratch export within its budget and leaves no file behind', async () => {
    const r = await warmUp({blockSize: 65536, extentBytes: 4 * MiB, alExtents: 2026})
    assert.equal(r.error, undefined)
    assert.ok(r.passes >= 1, `passes: ${r.passes}`)
    assert.ok(r.requests >= 500, `requests: ${r.requests}`)
    assert.ok(r.ms < 2000, `${r.ms} ms`)
    assert.deepEqual(await scratchLeft(), [])
  })

  it("trains on numbers of the disk's kind: the scratch export is as large as the disk (sparse, up to 16 GiB) and written near its end", async () => {
    // Sizes and offsets past 1 GiB are not small integers to V8 (Smi), whatever their value.
    const diskSize = 3 * 1024 * MiB
    const shape = {blockSize: 65536, extentBytes: 4 * MiB, alExtents: 2026, diskSize}
    const scratch = await openScratchExport(shape)
    try {
      assert.equal(scratch.size, diskSize)
      const last: WarmRequest = {type: C.NBD_CMD_WRITE, offset: diskSize - 65536, length: 65536}
      assert.equal(await scratch.client.run([last], 1, performance.now() + 10_000), 1)
      assert.ok(scratch.active.get(diskSize / 65536 - 1), 'the last block is marked in the scratch record')
    } finally {
      await scratch.close()
    }
    // A disk of 4 TiB: a 16 GiB scratch export (its bitmaps 32 KiB, not 8 MiB).
    const big = await openScratchExport({...shape, diskSize: 4 * 1024 * 1024 * MiB})
    const bigSize = big.size
    await big.close()
    assert.equal(bigSize, 16 * 1024 * MiB)
    const r = await warmUp(shape)
    assert.equal(r.error, undefined)
    assert.ok(r.requests >= 500, `requests: ${r.requests}`)
    assert.deepEqual(await scratchLeft(), [])
  })

  it("writes nothing of the disk, the .psf's bitmaps, index and activity log, nor the record in memory, before the first request", async () => {
    // A record with something in it: bits set, extents hot, a clean stop.
    const sock = path.join(dir, 'nbd.sock')
    const first = await Tracker.start(disk, {listen: [`unix:${sock}`], warmUp: false})
    await runOk('qemu-io', ['-f', 'raw', `nbd+unix:///d.img?socket=${sock}`, '-c', 'write -P 7 0 100k', '-c', 'write -P 9 5M 8k'])
    assert.equal((await first.stop()).clean, true)

    const psfPath = psfPathFor(disk)
    const diskBefore = await fs.readFile(disk)
    const diskStat = await fs.stat(disk, {bigint: true})
    const psfBefore = await fs.readFile(psfPath)
    const headerBefore = await readHeader(psfPath)

    const t = await Tracker.start(disk, {listen: [`unix:${sock}`], warmUp: true})
    try {
      const w = t.started.warmUp
      assert.ok(w && w.error === undefined && w.requests >= 500, `the warm-up ran: ${JSON.stringify(w)}`)
      // Nothing of this disk went through the request path.
      const st = t.status()
      assert.equal(st.writes, 0)
      assert.equal(st.bytesWritten, 0)
      assert.equal(st.newlyDirtied, 0)
      assert.equal(st.alTransactions, 0)
      assert.equal(st.pageWrites, 0)
      assert.equal(st.dirtyBlocks, t.started.dirtyBlocks)
      assert.equal(t.started.dirtyBlocks, 3) // 0-100k: two 64 KiB blocks; 5M: one

      assert.ok((await fs.readFile(disk)).equals(diskBefore), 'the disk is unchanged byte for byte')
      assert.equal((await fs.stat(disk, {bigint: true})).mtimeNs, diskStat.mtimeNs)
      const psfNow = await fs.readFile(psfPath)
      assert.equal(psfNow.length, psfBefore.length)
      // Past the header slots: bitmaps, block hash index, activity log.
      assert.ok(psfNow.subarray(2 * SLOT_SIZE).equals(psfBefore.subarray(2 * SLOT_SIZE)), 'the bitmaps, index and activity log are unchanged byte for byte')
      // The header: only the start's own write (CLEAN_SHUTDOWN cleared), once.
      const headerNow = await readHeader(psfPath)
      assert.deepEqual({...headerNow, flags: 0, counter: 0n}, {...headerBefore, flags: 0, counter: 0n})
      assert.equal(headerNow.counter, headerBefore.counter + 1n)
      assert.equal(headerNow.flags, headerBefore.flags & ~HeaderFlag.CLEAN_SHUTDOWN)
      assert.deepEqual(await scratchLeft(), [])
    } finally {
      await t.stop()
    }
  })

  it('is bounded by its passes first and its time cap after: a short cap ends it early, VDREP_TRACKER_WARMUP_MS sets the cap', async () => {
    const shape = {blockSize: 65536, extentBytes: 4 * MiB, alExtents: 2026}
    // A 1 ms cap: the first pass starts, no second one (a pass of ~960 requests takes far longer
    // than 1 ms; a 50 ms cap let two quick passes through on a quiet CI host).
    const short = await warmUp(shape, 1)
    assert.equal(short.error, undefined)
    // No request is sent after the cap; the ones in flight and the scratch stack's close finish.
    assert.ok(short.ms < 1 + 1000, `${short.ms} ms`)
    assert.ok(short.passes <= 1, `passes: ${short.passes}`)
    assert.deepEqual(await scratchLeft(), [])
    const none = await warmUp(shape, 0)
    assert.deepEqual({passes: none.passes, requests: none.requests, error: none.error}, {passes: 0, requests: 0, error: undefined})

    assert.equal(DEFAULT_WARM_UP_MS, 1000)
    assert.equal(warmUpCapMs({}), DEFAULT_WARM_UP_MS)
    assert.equal(warmUpCapMs({VDREP_TRACKER_WARMUP_MS: ' 300 '}), 300)
    assert.equal(warmUpCapMs({VDREP_TRACKER_WARMUP_MS: '0'}), 0)
    for (const bad of ['', 'soon', '-5', 'NaN']) assert.equal(warmUpCapMs({VDREP_TRACKER_WARMUP_MS: bad}), DEFAULT_WARM_UP_MS, bad)
    assert.equal(warmUpCapMs({VDREP_TRACKER_WARMUP_MS: '1e9'}), 60_000)
  })
})

async function readHeader(psfPath: string) {
  const psf = await PsfFile.open(psfPath, false)
  await psf.close()
  return psf.header
}
