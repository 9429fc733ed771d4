// The copy-on-write view of a test boot, against a point held in memory: writes that share a
// grain (run at once) both land; reads mix the point, the side file and zeros; the cap refuses
// a write whole (ENOSPC, nothing written) and a refused write leaves the count as it was; whole
// grains zeroed or trimmed free their space; the point itself is never written.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import type {PointReader} from '../../../src/core/points/point-reader.js'
import {GRAIN, OverlayBackend} from '../../../src/core/test-view/overlay-backend.js'
import {seededBytes, tempDir} from '../../helpers/disks.js'

const SIZE = 16 * GRAIN + 12_345 // a short last grain

function memoryPoint(data: Buffer): PointReader & {reads: number} {
  return {
    seq: 7,
    size: data.length,
    ms: 0,
    reads: 0,
    async read(offset: number, length: number) {
      this.reads++
      await new Promise((r) => setImmediate(r)) // let other requests interleave
      return Buffer.from(data.subarray(offset, Math.min(data.length, offset + length)))
    },
    async close() {},
  }
}

describe('test view: the copy-on-write overlay', () => {
  let dir: string
  let side: fs.FileHandle
  let base: Buffer
  let point: ReturnType<typeof memoryPoint>
  beforeEach(async () => {
    dir = await tempDir('vdrep-overlay-')
    side = await fs.open(path.join(dir, 'overlay.img'), 'w+')
    await side.truncate(SIZE)
    base = seededBytes('overlay-base', SIZE)
    point = memoryPoint(Buffer.from(base))
  })
  afterEach(async () => {
    await side.close()
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('concurrent partial writes into one grain both land, and the rest of the grain keeps the point', async () => {
    const v = new OverlayBackend(point, side, 'd.img', SIZE)
    const want = Buffer.from(base)
    const writes = Array.from({length: 8}, (_, i) => ({off: GRAIN * 3 + i * 5000 + 17, data: seededBytes(`w${i}`, 3000)}))
    await Promise.all(writes.map((w) => v.write(w.off, w.data)))
    for (const w of writes) w.data.copy(want, w.off)
    assert.ok((await v.read(0, SIZE)).equals(want))
    assert.equal(v.sideBytes, GRAIN)
  })

  it('reads across point, side file and zeros; the short last grain too', async () => {
    const v = new OverlayBackend(point, side, 'd.img', SIZE)
    const want = Buffer.from(base)
    const a = seededBytes('a', 2 * GRAIN + 100)
    await v.write(GRAIN - 50, a)
    a.copy(want, GRAIN - 50)
    await v.writeZeroes(5 * GRAIN + 10, 3 * GRAIN)
    want.fill(0, 5 * GRAIN + 10, 8 * GRAIN + 10)
    const tail = seededBytes('tail', 100)
    await v.write(SIZE - 100, tail)
    tail.copy(want, SIZE - 100)
    for (const [off, len] of [
      [0, SIZE],
      [GRAIN - 51, 3],
      [5 * GRAIN, 4 * GRAIN],
      [SIZE - 200, 200],
    ])
      assert.ok((await v.read(off, len)).equals(want.subarray(off, off + len)), `read ${off}+${len}`)
    assert.ok(point.reads > 0)
  })

  it('the cap: a write past it fails whole with ENOSPC and changes nothing; the count stays right after', async () => {
    const v = new OverlayBackend(point, side, 'd.img', 4 * GRAIN)
    await assert.rejects(v.write(0, Buffer.alloc(5 * GRAIN, 1)), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC')
    assert.equal(v.sideBytes, 0)
    assert.ok((await v.read(0, 5 * GRAIN)).equals(base.subarray(0, 5 * GRAIN)), 'nothing of the refused write is visible')
    await v.write(0, Buffer.alloc(2 * GRAIN, 2))
    await assert.rejects(v.write(4 * GRAIN, Buffer.alloc(3 * GRAIN, 3)), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC')
    await v.write(2 * GRAIN, Buffer.alloc(2 * GRAIN, 4)) // exactly up to the cap
    await v.write(0, Buffer.alloc(GRAIN, 5)) // rewriting held grains costs nothing
    await assert.rejects(v.write(10 * GRAIN, Buffer.alloc(1, 6)), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC')
    // Zeroing whole grains gives their room back.
    await v.trim(0, 2 * GRAIN)
    assert.equal(v.sideBytes, 2 * GRAIN)
    await v.write(10 * GRAIN, Buffer.alloc(1, 6))
    const st = await side.stat()
    assert.ok(st.blocks * 512 <= 4 * GRAIN, `the side file holds ${st.blocks * 512} bytes`)
  })
})
