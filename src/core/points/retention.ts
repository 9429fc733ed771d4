// Which restore points a replica keeps: a policy of a count, age tiers and a byte cap, read
// from a short spec (`1h:all,24h:hourly,7d:daily,count:100,bytes:10%`, or `off`). Pure
// functions: the plan is decided here from (seq, time) pairs and a clock the caller passes,
// and applied by prune.ts.
import {UsageError} from '../errors.js'
import {parseDuration, parseSize} from '../util/units.js'

/**
 * The default: every point of the last hour, one an hour for a day, capped at 10% of the disk.
 * A day of hourly points covers what vSphere Replication's 24 instances cover, the hour at
 * full grain covers "undo the last push"; the cap keeps a disk that churns from filling the
 * replica host (the undo of a day of writes is usually a few percent of a disk).
 */
export const DEFAULT_RETENTION = '1h:all,24h:hourly,bytes:10%'

export interface Tier {
  /** Points up to this old (seconds) fall in this tier ... */
  ageS: number
  /** ... and one per this many seconds is kept (0: every point). */
  everyS: number
}

export interface RetentionPolicy {
  off: boolean
  count?: number
  /** Sorted by age; points older than the last are dropped. None: age drops nothing. */
  tiers: Tier[]
  maxBytes?: number
  maxPercent?: number
}

const GRAIN: Record<string, number> = {all: 0, minutely: 60, hourly: 3600, daily: 86400, weekly: 7 * 86400}

const bad = (spec: string, detail: string) =>
  new UsageError('RETENTION_BAD', `cannot read the retention policy '${spec}': ${detail}`, {
    hint: "use 'off' or items such as 1h:all,24h:hourly,7d:daily,count:48,bytes:10% (bytes also takes 20G)",
  })

export function parseRetention(spec: string): RetentionPolicy {
  const s = spec.trim()
  if (s === 'off') return {off: true, tiers: []}
  const p: RetentionPolicy = {off: false, tiers: []}
  if (s === '') throw bad(spec, 'it is empty')
  for (const item of s.split(',').map((x) => x.trim())) {
    const m = /^([^:]+):(.+)$/.exec(item)
    if (!m) throw bad(spec, `'${item}' is not KEY:VALUE`)
    const [, key, value] = m
    if (key === 'count') {
      if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 1e6) throw bad(spec, `count '${value}' is not a whole number from 1`)
      p.count = Number(value)
    } else if (key === 'bytes') {
      const pct = /^(\d+(?:\.\d+)?)%$/.exec(value)
      if (pct) {
        const n = Number(pct[1])
        if (!(n > 0 && n <= 1000)) throw bad(spec, `bytes '${value}' must be above 0%`)
        p.maxPercent = n
      } else p.maxBytes = parseSizeOr(value, spec)
    } else {
      const ageS = durationOr(key, spec)
      const everyS = value in GRAIN ? GRAIN[value] : durationOr(value, spec)
      if (everyS > ageS) throw bad(spec, `'${item}' keeps one point per ${value}, longer than the tier itself`)
      if (p.tiers.some((t) => t.ageS === ageS)) throw bad(spec, `two tiers of ${key}`)
      p.tiers.push({ageS, everyS})
    }
  }
  p.tiers.sort((a, b) => a.ageS - b.ageS)
  return p
}

function durationOr(v: string, spec: string): number {
  try {
    return parseDuration(v, 'retention')
  } catch {
    throw bad(spec, `'${v}' is not a duration (1h, 24h, 7d) or all/hourly/daily/weekly`)
  }
}

function parseSizeOr(v: string, spec: string): number {
  try {
    const n = parseSize(v, 'retention')
    if (n <= 0) throw new Error('zero')
    return n
  } catch {
    throw bad(spec, `bytes '${v}' is not a size (20G) or a percentage of the disk (10%)`)
  }
}

/** The byte cap for a disk of `diskSize`, or Infinity. */
export function byteCap(p: RetentionPolicy, diskSize: number): number {
  let cap = Infinity
  if (p.maxBytes !== undefined) cap = p.maxBytes
  if (p.maxPercent !== undefined) cap = Math.min(cap, Math.floor((diskSize * p.maxPercent) / 100))
  return cap
}

export interface PointTime {
  seq: number
  /** Commit time, ms since the epoch. */
  ms: number
}

/**
 * The points to keep by count and age (the byte cap is applied afterwards, on the records'
 * real sizes: prune.ts). `points` are in sequence order, the last one the current point,
 * which is always kept. A point in a tier that keeps one per interval is kept when it is the
 * newest of all points in its interval (intervals aligned to the epoch), so the choice does
 * not move as time passes or as older points go.
 */
export function planRetention(points: PointTime[], p: RetentionPolicy, nowMs: number): Set<number> {
  const keep = new Set<number>()
  if (points.length === 0) return keep
  const current = points[points.length - 1]
  keep.add(current.seq)
  if (p.off) return keep
  const newestOf = new Map<string, number>()
  for (const pt of points)
    for (const t of p.tiers) {
      if (t.everyS === 0) continue
      const key = `${t.everyS}:${Math.floor(pt.ms / (t.everyS * 1000))}`
      const seen = newestOf.get(key)
      if (seen === undefined || seen < pt.seq) newestOf.set(key, pt.seq)
    }
  const byAge: number[] = []
  for (const pt of points.slice(0, -1)) {
    if (p.tiers.length > 0) {
      const ageS = Math.max(0, (nowMs - pt.ms) / 1000)
      const tier = p.tiers.find((t) => ageS <= t.ageS)
      if (!tier) continue
      if (tier.everyS !== 0 && newestOf.get(`${tier.everyS}:${Math.floor(pt.ms / (tier.everyS * 1000))}`) !== pt.seq) continue
    }
    byAge.push(pt.seq)
  }
  const room = p.count === undefined ? byAge.length : Math.max(0, p.count - 1)
  for (const seq of byAge.slice(Math.max(0, byAge.length - room))) keep.add(seq)
  return keep
}

/** How many of the oldest kept points go so that the records left fit the cap (`sizes`: the record from each kept point to the next, oldest first). */
export function capDrops(sizes: number[], cap: number): number {
  let total = sizes.reduce((a, b) => a + b, 0)
  let n = 0
  while (n < sizes.length && total > cap) total -= sizes[n++]
  return n
}
