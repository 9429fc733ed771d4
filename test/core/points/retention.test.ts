// Retention decides from (seq, time) pairs and a clock passed in: tiers are tested with a fake
// clock, the count and the byte cap by what they leave.
import assert from 'node:assert/strict'
import {byteCap, capDrops, DEFAULT_RETENTION, parseRetention, planRetention, type PointTime} from '../../../src/core/points/retention.js'

const H = 3600_000
const NOW = Date.UTC(2025, 0, 10, 12, 0, 0)

/** One point every `stepMin` minutes over the last `hours`, the last one now. */
function series(hours: number, stepMin: number): PointTime[] {
  const out: PointTime[] = []
  const n = Math.floor((hours * 60) / stepMin)
  for (let i = 0; i <= n; i++) out.push({seq: i + 1, ms: NOW - (n - i) * stepMin * 60_000})
  return out
}

describe('retention policy', () => {
  it('parses tiers, count and bytes; refuses what it cannot read', () => {
    const p = parseRetention('7d:daily,1h:all,1d:hourly,count:48,bytes:10%')
    assert.deepEqual(p.tiers, [
      {ageS: 3600, everyS: 0},
      {ageS: 86400, everyS: 3600},
      {ageS: 7 * 86400, everyS: 86400},
    ])
    assert.equal(p.count, 48)
    assert.equal(byteCap(p, 1000), 100)
    assert.equal(byteCap(parseRetention('bytes:1M'), 1e12), 1 << 20)
    assert.equal(parseRetention('off').off, true)
    assert.ok(parseRetention(DEFAULT_RETENTION))
    for (const bad of ['', 'count:0', 'count:x', '1h:sometimes', 'bytes:0', 'bytes:-1%', 'nonsense', '1h:2h', '1h:all,1h:all'])
      assert.throws(
        () => parseRetention(bad),
        (e: Error & {code?: string}) => e.code === 'RETENTION_BAD',
        bad,
      )
  })

  it('1h:all,1d:hourly,7d:daily keeps every point of the last hour, the newest of each older hour for a day, of each day for a week', () => {
    const pts = series(10 * 24, 15) // every 15 min for 10 days
    const keep = planRetention(pts, parseRetention('1h:all,1d:hourly,7d:daily'), NOW)
    const age = (p: PointTime) => (NOW - p.ms) / H
    for (const p of pts) {
      const a = age(p)
      const hourEnd = Math.floor(p.ms / H) === Math.floor((p.ms + 15 * 60_000) / H) ? false : true // last of its hour
      const dayEnd = Math.floor(p.ms / (24 * H)) !== Math.floor((p.ms + 15 * 60_000) / (24 * H))
      const want = p.seq === pts[pts.length - 1].seq || a <= 1 || (a <= 24 ? hourEnd : a <= 24 * 7 ? dayEnd : false)
      assert.equal(keep.has(p.seq), want, `point at age ${a.toFixed(2)} h`)
    }
    // 4 in the last hour + 23 hourly + 6 daily (roughly): bounded, not every point
    assert.ok(keep.size > 25 && keep.size < 40, String(keep.size))
  })

  it('the choice does not move as time passes: a point kept hourly stays until its tier ends', () => {
    const pts = series(30, 10)
    const p1 = parseRetention('1h:all,24h:hourly')
    const a = planRetention(pts, p1, NOW)
    const b = planRetention(pts, p1, NOW + 2 * H)
    for (const p of pts) if (NOW + 2 * H - p.ms > H && NOW - p.ms > H && NOW + 2 * H - p.ms <= 24 * H) assert.equal(a.has(p.seq), b.has(p.seq), `seq ${p.seq}`)
  })

  it('count keeps the newest N (the current point among them); no tiers means age drops nothing', () => {
    const pts = series(100, 60)
    const keep = planRetention(pts, parseRetention('count:5'), NOW)
    assert.deepEqual(
      [...keep].sort((x, y) => x - y),
      pts.slice(-5).map((p) => p.seq),
    )
    assert.equal(planRetention(pts, parseRetention('count:1000'), NOW).size, pts.length)
  })

  it('tiers and count together: count applies to what the tiers keep', () => {
    const pts = series(3, 15)
    const keep = planRetention(pts, parseRetention('1h:all,count:3'), NOW)
    assert.deepEqual(
      [...keep].sort((x, y) => x - y),
      pts.slice(-3).map((p) => p.seq),
    )
  })

  it('off keeps only the current point; the current point is kept whatever its age', () => {
    const pts = series(1000, 600)
    assert.deepEqual([...planRetention(pts, parseRetention('off'), NOW)], [pts[pts.length - 1].seq])
    assert.deepEqual([...planRetention(pts, parseRetention('1h:all'), NOW + 1000 * H)], [pts[pts.length - 1].seq])
  })

  it('the byte cap drops the oldest records until the rest fit', () => {
    assert.equal(capDrops([10, 10, 10], 30), 0)
    assert.equal(capDrops([10, 10, 10], 29), 1)
    assert.equal(capDrops([50, 1, 1], 2), 1)
    assert.equal(capDrops([5, 5], 0), 2)
  })
})
