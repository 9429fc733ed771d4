// --compress parsing and auto's choice of level, driven with simulated rates: a link faster
// than the compressor ends off (a fast link never gets slower), a slow link climbs.
import assert from 'node:assert/strict'
import {AutoLevel, parseCompress, WINDOW_BYTES} from '../../../src/core/compress/policy.js'

/** Feed `windows` windows; `rateOf(level)` gives raw bytes per ms at that level. */
function drive(a: AutoLevel, windows: number, rateOf: (level: number) => number): number[] {
  const seen: number[] = []
  for (let w = 0; w < windows; w++) {
    const level = a.level()
    seen.push(level)
    a.record(WINDOW_BYTES, WINDOW_BYTES / rateOf(level))
  }
  return seen
}

describe('compress/policy', () => {
  it('parses auto, none and levels, and refuses the rest', () => {
    assert.equal(parseCompress('auto'), 'auto')
    assert.equal(parseCompress('NONE'), 'none')
    assert.equal(parseCompress('3'), 3)
    for (const bad of ['0', '20', '-1', '1.5', 'fast', '']) assert.throws(() => parseCompress(bad), {code: 'BAD_COMPRESS'})
  })

  it('auto on a link faster than the compressor settles off after its probes', () => {
    const a = new AutoLevel()
    a.record(WINDOW_BYTES, 1) // the warm-up window, not measured
    // Loopback: raw 600 MB/s; level 1 is CPU-bound at 400, level 3 at 250.
    const seen = drive(a, 60, (l) => ({0: 600_000, 1: 400_000, 3: 250_000})[l] as number)
    assert.equal(a.current(), 0)
    const off = seen.filter((l) => l === 0).length
    assert.ok(off >= 56, `off for ${off} of 60 windows: ${seen.join(',')}`)
    assert.ok(!seen.includes(3), 'never climbs past a rung that measured slower')
  })

  it('auto on a slow link climbs to the level that is fastest', () => {
    const a = new AutoLevel()
    a.record(WINDOW_BYTES, 1)
    // 1 Gbit/s: raw 125 MB/s; level 1 gives 180, level 3 gives 200.
    const seen = drive(a, 60, (l) => ({0: 125_000, 1: 180_000, 3: 200_000})[l] as number)
    assert.equal(a.current(), 3)
    assert.ok(seen.filter((l) => l === 3).length >= 50, seen.join(','))
  })

  it('auto re-probes less often while the link is steady', () => {
    const a = new AutoLevel()
    a.record(WINDOW_BYTES, 1)
    const seen = drive(a, 400, (l) => ({0: 600_000, 1: 400_000, 3: 250_000})[l] as number)
    const probes = seen.filter((l, i) => l === 1 && seen[i - 1] === 0).length
    // At 32, then 64, then 128 windows apart: 4 probes in 400 windows, not 12.
    assert.ok(probes <= 5, `${probes} probes: ${seen.join('')}`)
    assert.ok(seen.filter((l) => l === 0).length >= 390)
  })

  it('auto follows a link that changes (re-probes)', () => {
    const a = new AutoLevel()
    a.record(WINDOW_BYTES, 1)
    drive(a, 40, (l) => ({0: 600_000, 1: 400_000, 3: 250_000})[l] as number)
    assert.equal(a.current(), 0)
    drive(a, 80, (l) => ({0: 100_000, 1: 170_000, 3: 150_000})[l] as number)
    assert.equal(a.current(), 1)
  })
})
