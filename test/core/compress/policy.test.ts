// --compress parsing and auto's choice of level, driven with simulated rates and a simulated
// clock: a link faster than the compressor ends off (a fast link never gets slower), a slow link
// compresses without ever measuring raw while it bounds the compressed stream, a very slow one at level 3, a starved CPU does not compress, and a mode measured
// slower end to end is dropped whatever the rates say.
import assert from 'node:assert/strict'
import {AutoLevel, parseCompress, SETTLE_BYTES, WINDOW_BYTES} from '../../../src/core/compress/policy.js'

const PIECE = 1 << 20

interface Link {
  /** Carrier bytes per ms. */
  d: number
  /** Compressor input bytes per ms, per level. */
  c: Record<number, number>
  /** Compressed size as a share of the input. */
  ratio?: number
  /** Extra ms per compressed piece end to end (say, a receiver that decompresses on a busy host). */
  penalty?: number
  /** Workers compressing side by side. */
  workers?: number
}

/** Send `windows` windows of pieces; returns the level of each piece. */
function drive(a: AutoLevel, clock: {t: number}, windows: number, link: Link): number[] {
  const seen: number[] = []
  for (let p = 0; p < (windows * WINDOW_BYTES) / PIECE; p++) {
    const level = a.level()
    seen.push(level)
    let ms: number
    if (level > 0) {
      const wire = PIECE * (link.ratio ?? 0.6)
      a.compressed(level, PIECE, PIECE / link.c[level])
      a.carried(wire, wire / link.d)
      // Pipelined: the slower of the worker and the carrier, plus any penalty.
      ms = Math.max(PIECE / link.c[level] / (link.workers ?? 1), wire / link.d) + (link.penalty ?? 0)
    } else {
      a.carried(PIECE, PIECE / link.d)
      ms = PIECE / link.d
    }
    clock.t += ms
    a.sent(PIECE, level)
  }
  return seen
}

function auto(workers = 1): {a: AutoLevel; clock: {t: number}} {
  const clock = {t: 0}
  return {a: new AutoLevel(workers, () => clock.t), clock}
}

const LOOPBACK: Link = {d: 600_000, c: {1: 400_000, 3: 150_000}}
const GBIT: Link = {d: 125_000, c: {1: 400_000, 3: 150_000}}
const MBIT100: Link = {d: 12_500, c: {1: 400_000, 3: 150_000}, ratio: 0.55}
const perWindow = WINDOW_BYTES / PIECE
/** Windows one probe of the other mode lasts: the settling stretch, then one measured window. */
const probeWindows = SETTLE_BYTES / WINDOW_BYTES + 1
/** A probe of compressing settles twice as long (the raw backlog drains at the link's rate). */
const onProbeWindows = (2 * SETTLE_BYTES) / WINDOW_BYTES + 1

describe('compress/policy', () => {
  it('parses auto, none and levels, and refuses the rest', () => {
    assert.equal(parseCompress('auto'), 'auto')
    assert.equal(parseCompress('NONE'), 'none')
    assert.equal(parseCompress('3'), 3)
    for (const bad of ['0', '20', '-1', '1.5', 'fast', '']) assert.throws(() => parseCompress(bad), {code: 'BAD_COMPRESS'})
  })

  it('auto on a link faster than the compressor goes off after two windows and stays off', () => {
    const {a, clock} = auto()
    const seen = drive(a, clock, 60, LOOPBACK)
    assert.ok(seen.slice(0, 2 * perWindow).every((l) => l > 0) && seen.slice(2 * perWindow, 3 * perWindow).every((l) => l === 0), seen.join(''))
    // Then one probe of compressing (16 windows on), maybe a second (32 more).
    assert.ok(
      seen.slice(2 * perWindow).filter((l) => l > 0).length <= 2 * onProbeWindows * perWindow,
      `compressed ${seen.filter((l) => l > 0).length} of ${seen.length}`,
    )
    assert.ok(!seen.includes(3), 'never climbs on a fast link')
  })

  it('auto on a 1 Gbit/s link compresses at level 1', () => {
    const {a, clock} = auto()
    const seen = drive(a, clock, 60, GBIT)
    assert.equal(a.current(), 1)
    assert.ok(seen.filter((l) => l === 1).length >= 0.9 * seen.length, seen.join(''))
  })

  it('auto on a link that bounds the compressed stream never spends a window raw to measure it', () => {
    // Raw probes cost the 1 Gbit/s bench 24 MiB raw each, and a noisy one turned it raw for 16 windows.
    const {a, clock} = auto()
    const seen = drive(a, clock, 120, GBIT)
    assert.ok(
      seen.every((l) => l === 1),
      a.measured().history,
    )
  })

  it('auto measures raw as soon as the compressed stream stops being bound by the link, and goes raw', () => {
    const {a, clock} = auto()
    assert.ok(drive(a, clock, 40, GBIT).every((l) => l > 0))
    // The link gets faster than the compressor: the probe comes at once, not up to 16 windows later.
    const seen = drive(a, clock, 8, LOOPBACK)
    assert.ok(
      seen.slice(-2 * perWindow).every((l) => l === 0),
      a.measured().history,
    )
  })

  it('auto on a 100 Mbit/s link compresses at level 3', () => {
    const {a, clock} = auto()
    drive(a, clock, 40, MBIT100)
    assert.equal(a.current(), 3)
  })

  it('auto does not compress when the CPU is too busy to outrun the link', () => {
    const {a, clock} = auto()
    const seen = drive(a, clock, 60, {d: 125_000, c: {1: 90_000, 3: 40_000}})
    assert.ok(seen.slice(-40 * perWindow).filter((l) => l === 0).length >= (40 - 2 * probeWindows) * perWindow, seen.join(''))
  })

  it('two workers double what the compressor can do', () => {
    const {a, clock} = auto(2)
    const seen = drive(a, clock, 40, {d: 125_000, c: {1: 90_000, 3: 40_000}, workers: 2})
    // All but the probes of raw (the first after one window).
    assert.ok(seen.filter((l) => l > 0).length >= seen.length - 2 * probeWindows * perWindow, seen.join(''))
  })

  it('compressing measured slower end to end is dropped whatever the rates say', () => {
    const {a, clock} = auto()
    // The rates say compress (400 > 125), but each compressed piece costs 20 ms more end to end.
    const seen = drive(a, clock, 80, {...GBIT, penalty: 20})
    assert.ok(seen.slice(-40 * perWindow).filter((l) => l > 0).length <= onProbeWindows * perWindow, seen.join(''))
  })

  it('compressing measured faster end to end is kept though the rates say the compressor is too slow', () => {
    const {a, clock} = auto()
    // A host short of CPU: the worker measures 100 MB/s, under the link's 125, but every raw
    // piece costs 15 ms more end to end (encrypting and copying 1.7x the bytes on both ends).
    const link: Link = {d: 125_000, c: {1: 100_000, 3: 40_000}}
    const seen: number[] = []
    for (let w = 0; w < 80; w++) {
      for (let p = 0; p < perWindow; p++) {
        const level = a.level()
        seen.push(level)
        if (level > 0) {
          a.compressed(level, PIECE, PIECE / link.c[level])
          a.carried(PIECE * 0.6, (PIECE * 0.6) / link.d)
          clock.t += PIECE / link.c[level]
        } else {
          a.carried(PIECE, PIECE / link.d)
          clock.t += PIECE / link.d + 15
        }
        a.sent(PIECE, level)
      }
    }
    assert.ok(seen.slice(-40 * perWindow).filter((l) => l > 0).length >= (40 - 2 * probeWindows) * perWindow, seen.join(''))
  })

  it('auto re-measures the other mode less often while nothing changes', () => {
    const {a, clock} = auto()
    const seen = drive(a, clock, 400, LOOPBACK)
    const windows = Array.from({length: 400}, (_, w) => seen[w * perWindow])
    const probes = windows.filter((l, i) => l > 0 && windows[i - 1] === 0).length
    // 16, 32, 64, 128, 128 windows apart: at most 6 in 400 windows.
    assert.ok(probes <= 6, `${probes} probes: ${windows.join('')}`)
    assert.ok(windows.filter((l) => l === 0).length >= 400 - 6 * onProbeWindows, windows.join(''))
  })

  it('auto follows a link that changes', () => {
    const {a, clock} = auto()
    drive(a, clock, 40, LOOPBACK)
    assert.equal(a.current(), 0)
    drive(a, clock, 200, GBIT)
    assert.equal(a.current(), 1)
    drive(a, clock, 200, LOOPBACK)
    assert.equal(a.current(), 0)
  })
})
