// Tests of dataRuns in src/core/disk/hole-map.ts: the runs of data blocks that the chunk
// reader and the scan's range hasher read, against a block-by-block model.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {dataRuns} from '../../../src/core/disk/hole-map.js'

const runs = (bits: number[], count = bits.length) => [...dataRuns(Uint8Array.from(bits), count)]

describe('core/disk/hole-map dataRuns', () => {
  it('names each run of data blocks once, as [start, end)', () => {
    assert.deepEqual(runs([]), [])
    assert.deepEqual(runs([1, 1, 1]), [])
    assert.deepEqual(runs([0, 0, 0]), [[0, 3]])
    assert.deepEqual(runs([0, 1, 0, 0, 1, 1, 0]), [
      [0, 1],
      [2, 4],
      [6, 7],
    ])
    assert.deepEqual(runs([1, 0, 0, 1]), [[1, 3]])
  })

  it('looks only at the first `count` entries', () => {
    assert.deepEqual(runs([0, 0, 0, 0], 2), [[0, 2]])
    assert.deepEqual(runs([1, 0, 0, 0], 1), [])
  })

  it('covers exactly the data blocks, in order, with runs separated by holes (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({min: 0, max: 1}), {maxLength: 200}), (bits) => {
        const covered = new Array<number>(bits.length).fill(1)
        let last = -1
        for (const [s, e] of runs(bits)) {
          assert.ok(s > last && s < e && e <= bits.length)
          assert.ok(e === bits.length || bits[e] === 1, 'a run ends at a hole or the end')
          assert.ok(s === 0 || bits[s - 1] === 1, 'a run starts after a hole or at the start')
          covered.fill(0, s, e)
          last = e
        }
        assert.deepEqual(covered, bits)
      }),
    )
  })
})
