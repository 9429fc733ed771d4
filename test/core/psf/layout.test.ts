// Tests of src/core/psf/layout.ts: the page geometry and where each region starts.
import assert from 'node:assert/strict'
import {
  BITS_PER_PAGE,
  blockCountOf,
  HASHES_PER_PAGE,
  layoutFor,
  AL_SLOTS_PER_PAGE,
  PAGE_HEADER_SIZE,
  PAGE_PAYLOAD_SIZE,
  PAGE_SIZE,
  pageCount,
  Region,
  SLOT_SIZE,
} from '../../../src/core/psf/layout.js'

describe('psf layout', () => {
  it('has the documented geometry', () => {
    assert.equal(SLOT_SIZE, 4096)
    assert.equal(PAGE_SIZE, 4096)
    assert.equal(PAGE_HEADER_SIZE, 12)
    assert.equal(PAGE_PAYLOAD_SIZE, 4084)
    assert.equal(BITS_PER_PAGE, 32672)
    assert.equal(HASHES_PER_PAGE, 127)
  })

  it('counts blocks rounding a partial last block up', () => {
    assert.equal(blockCountOf(0, 4096), 0)
    assert.equal(blockCountOf(1, 4096), 1)
    assert.equal(blockCountOf(4096, 4096), 1)
    assert.equal(blockCountOf(4097, 4096), 2)
    assert.equal(blockCountOf(2 ** 40, 1 << 20), 2 ** 20)
  })

  it('lays out a small disk as two slots and one page per region', () => {
    const l = layoutFor(10 * 65536, 65536)
    assert.deepEqual(l, {blockCount: 10, bitmapPages: 1, indexPages: 1, alPages: 0, regionOffset: {1: 8192, 2: 12288, 3: 16384, 4: 20480}, fileSize: 20480})
  })

  it('puts the activity log (format 3) after the index: 1013 slots a page', () => {
    assert.equal(AL_SLOTS_PER_PAGE, 1013)
    const l = layoutFor(10 * 65536, 65536, 2026)
    assert.equal(l.alPages, 2)
    assert.equal(l.regionOffset[Region.ACTIVITY_LOG], 20480)
    assert.equal(l.fileSize, 20480 + 2 * 4096)
    assert.equal(layoutFor(10 * 65536, 65536, 2035).alPages, 3)
    assert.equal(layoutFor(10 * 65536, 65536, 1).alPages, 1)
    assert.equal(pageCount(l, Region.ACTIVITY_LOG), 2)
  })

  it('keeps one page per region for an empty disk', () => {
    assert.equal(layoutFor(0, 4096).fileSize, 20480)
  })

  it('adds a bitmap page at exactly one block past a page', () => {
    assert.equal(layoutFor(BITS_PER_PAGE * 4096, 4096).bitmapPages, 1)
    assert.equal(layoutFor(BITS_PER_PAGE * 4096 + 1, 4096).bitmapPages, 2)
    assert.equal(layoutFor(HASHES_PER_PAGE * 4096, 4096).indexPages, 1)
    assert.equal(layoutFor(HASHES_PER_PAGE * 4096 + 1, 4096).indexPages, 2)
  })

  it('places the regions back to back and sizes the file to hold them', () => {
    const l = layoutFor(40000 * 4096, 4096)
    assert.equal(l.blockCount, 40000)
    assert.equal(l.bitmapPages, 2)
    assert.equal(l.indexPages, 315)
    assert.equal(l.regionOffset[Region.ACTIVE], 2 * 4096)
    assert.equal(l.regionOffset[Region.INFLIGHT], 4 * 4096)
    assert.equal(l.regionOffset[Region.INDEX], 6 * 4096)
    assert.equal(l.fileSize, (6 + 315) * 4096)
    assert.equal(pageCount(l, Region.ACTIVE), 2)
    assert.equal(pageCount(l, Region.INFLIGHT), 2)
    assert.equal(pageCount(l, Region.INDEX), 315)
  })
})
