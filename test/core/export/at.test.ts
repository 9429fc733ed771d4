// `--at`: a sequence, latest/current, an ISO date or -DURATION; anything else is refused
// (BAD_POINT_SPEC, exit 2) before anything is read.
import assert from 'node:assert/strict'
import {VdrepError} from '../../../src/core/errors.js'
import {parsePointSpec} from '../../../src/core/export/at.js'

describe('export --at', () => {
  const now = Date.parse('2026-12-07T12:00:00Z')
  it('reads sequences, latest, dates and -DURATION', () => {
    assert.deepEqual(parsePointSpec(undefined, now), {kind: 'latest'})
    assert.deepEqual(parsePointSpec('current', now), {kind: 'latest'})
    assert.deepEqual(parsePointSpec('42', now), {kind: 'seq', seq: 42})
    assert.deepEqual(parsePointSpec('2026-12-07T10:00Z', now), {kind: 'time', ms: Date.parse('2026-12-07T10:00Z')})
    assert.deepEqual(parsePointSpec('2026-12-07', now), {kind: 'time', ms: Date.parse('2026-12-07')})
    assert.deepEqual(parsePointSpec('-90m', now), {kind: 'time', ms: now - 90 * 60_000})
  })
  it('refuses anything else', () => {
    for (const bad of ['yesterday', '-', '-x', '1e3', '99999999999999999999', '2026-13-45', '12:00', 'latest2', ''])
      assert.throws(
        () => parsePointSpec(bad, now),
        (e: unknown) => e instanceof VdrepError && e.code === 'BAD_POINT_SPEC' && e.exitCode === 2,
        bad,
      )
  })
})
