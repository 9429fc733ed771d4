// Which restore point `--at` names: a sequence (`42`), `latest` / `current` (the replica as it
// is now, the default), or a time: an ISO 8601 date (`2026-12-07T10:00Z`) or `-DURATION` (that
// long ago: `-90m`), meaning the newest kept point committed at or before it.
import {StateError, UsageError} from '../errors.js'
import {listPoints, type PointInfo} from '../points/list.js'
import {parseDuration} from '../util/units.js'

export type PointSpec = {kind: 'latest'} | {kind: 'seq'; seq: number} | {kind: 'time'; ms: number}

const badSpec = (spec: string, why: string) =>
  new UsageError('BAD_POINT_SPEC', `--at ${spec}: ${why}`, {
    hint: "use a sequence from `vdrep points`, 'latest', a date (2026-12-07T10:00Z) or -DURATION (-90m)",
  })

/** Parse `--at`; `nowMs` anchors `-DURATION`. Nothing is read. */
export function parsePointSpec(spec: string | undefined, nowMs = Date.now()): PointSpec {
  const s = (spec ?? 'latest').trim()
  if (s === 'latest' || s === 'current') return {kind: 'latest'}
  if (/^\d+$/.test(s)) {
    const seq = Number(s)
    if (!Number.isSafeInteger(seq)) throw badSpec(s, 'the sequence is too large')
    return {kind: 'seq', seq}
  }
  if (s.startsWith('-')) {
    let seconds: number
    try {
      seconds = parseDuration(s.slice(1), '--at')
    } catch {
      throw badSpec(s, 'cannot read the duration')
    }
    return {kind: 'time', ms: nowMs - seconds * 1000}
  }
  // Only things that look like a date: Date.parse alone takes odd strings ("1", "x 2").
  if (!/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/i.test(s)) throw badSpec(s, 'not a sequence, latest, a date or -DURATION')
  const ms = Date.parse(s)
  if (!Number.isFinite(ms)) throw badSpec(s, 'not a valid date')
  return {kind: 'time', ms}
}

/** The kept point `spec` names, from the listing of `replica`'s points (newest first). */
export async function resolvePoint(replica: string, spec: PointSpec): Promise<PointInfo> {
  const l = await listPoints(replica)
  if (l.untrusted && spec.kind !== 'latest') throw new StateError('POINT_UNTRUSTED', `the restore points of ${replica} cannot be read: ${l.untrusted}`)
  if (l.untrusted) throw new StateError('POINT_UNTRUSTED', `${replica} cannot be read as a point: ${l.untrusted}`)
  const kept = () => `kept: ${l.points.map((p) => `${p.seq} (${p.time})`).join(', ')}`
  const gone = (what: string) =>
    new StateError('POINT_GONE', `${replica} has no point ${what} (${kept()})`, {hint: 'list the kept points with `vdrep points <replica>`'})
  let found: PointInfo | undefined
  if (spec.kind === 'latest') found = l.points[0]
  else if (spec.kind === 'seq') found = l.points.find((p) => p.seq === spec.seq)
  else found = l.points.find((p) => Date.parse(p.time) <= spec.ms)
  if (!found) throw gone(spec.kind === 'seq' ? String(spec.seq) : spec.kind === 'time' ? `at or before ${new Date(spec.ms).toISOString()}` : '')
  return found
}
