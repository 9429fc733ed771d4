// Tests of src/core/psf/bitmap.ts: bit order (LSB first) against hand-written bytes, and
// every operation at byte and range edges.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {Bitmap} from '../../../src/core/psf/bitmap.js'

describe('bitmap', () => {
  it('stores block n at bit n%8 of byte n/8, least significant bit first', () => {
    const bm = new Bitmap(20)
    for (const b of [0, 9, 15, 19]) bm.set(b)
    assert.deepEqual(Buffer.from(bm.bits), Buffer.from('018208', 'hex'))
  })

  it('reads blocks from hand-written bytes', () => {
    const bm = new Bitmap(16, Uint8Array.from([0x81, 0x40]))
    assert.deepEqual([...bm.setBlocks()], [0, 7, 14])
    assert.equal(bm.get(7), true)
    assert.equal(bm.get(8), false)
  })

  it('sizes its bytes from the block count', () => {
    assert.equal(new Bitmap(0).bits.length, 0)
    assert.equal(new Bitmap(1).bits.length, 1)
    assert.equal(new Bitmap(8).bits.length, 1)
    assert.equal(new Bitmap(9).bits.length, 2)
  })

  it('clears one block and leaves its neighbours', () => {
    const bm = new Bitmap(16, Uint8Array.from([0xff, 0xff]))
    bm.clear(8)
    assert.deepEqual(Buffer.from(bm.bits), Buffer.from('fffe', 'hex'))
    assert.equal(bm.count(), 15)
  })

  it('setRange stops at the block count', () => {
    const bm = new Bitmap(10)
    bm.setRange(6, 100)
    assert.deepEqual([...bm.setBlocks()], [6, 7, 8, 9])
    assert.deepEqual(Buffer.from(bm.bits), Buffer.from('c003', 'hex'))
  })

  it('merges another bitmap in (or), clears all, reports empty', () => {
    const a = new Bitmap(16, Uint8Array.from([0x01, 0x00]))
    a.merge(new Bitmap(16, Uint8Array.from([0x10, 0x80])))
    assert.deepEqual(Buffer.from(a.bits), Buffer.from('1180', 'hex'))
    assert.equal(a.isEmpty(), false)
    a.clearAll()
    assert.equal(a.isEmpty(), true)
    assert.equal(a.count(), 0)
  })

  it('agrees with a set of numbers for any sequence of sets and clears', () => {
    fc.assert(
      fc.property(fc.integer({min: 1, max: 300}), fc.array(fc.tuple(fc.boolean(), fc.nat()), {maxLength: 200}), (n, ops) => {
        const bm = new Bitmap(n)
        const ref = new Set<number>()
        for (const [on, raw] of ops) {
          const b = raw % n
          if (on) {
            bm.set(b)
            ref.add(b)
          } else {
            bm.clear(b)
            ref.delete(b)
          }
        }
        assert.deepEqual(
          [...bm.setBlocks()],
          [...ref].sort((x, y) => x - y),
        )
        assert.equal(bm.count(), ref.size)
        for (let b = 0; b < n; b++) assert.equal(bm.get(b), ref.has(b))
      }),
      {numRuns: 200},
    )
  })
})
