// Tests of src/core/receiver/connection-caps.ts: the total and per-uid caps, and the
// refusal report (one line per interval, counts in it).
import assert from 'node:assert/strict'

import {ConnectionCaps, REFUSAL_REPORT_MS} from '../../../src/core/receiver/connection-caps.js'

function caps(maxConnections: number, maxConnectionsPerUid: number) {
  const lines: string[] = []
  let t = 1_000_000
  const c = new ConnectionCaps(
    {maxConnections, maxConnectionsPerUid},
    (l) => lines.push(l),
    () => t,
  )
  return {c, lines, advance: (ms: number) => (t += ms)}
}

describe('core/receiver/connection-caps', function () {
  it('admits up to the total, refuses past it, admits again after a close', () => {
    const {c} = caps(2, 8)
    assert.equal(c.admit(), true)
    assert.equal(c.admit(), true)
    assert.equal(c.admit(), false)
    assert.equal(c.openConnections, 2)
    c.closed()
    assert.equal(c.admit(), true)
  })

  it('counts sessions per uid, apart for each uid', () => {
    const {c} = caps(64, 2)
    assert.equal(c.startSession(0), true)
    assert.equal(c.startSession(0), true)
    assert.equal(c.startSession(0), false)
    assert.equal(c.startSession(1000), true)
    c.endSession(0)
    assert.equal(c.sessionsOf(0), 1)
    assert.equal(c.startSession(0), true)
    c.endSession(1000)
    assert.equal(c.sessionsOf(1000), 0)
  })

  it('reports refusals at most once per interval, with the counts since the last line', () => {
    const {c, lines, advance} = caps(1, 1)
    c.admit()
    c.refusedPeer(() => 'first refused peer, in detail')
    assert.deepEqual(lines, ['first refused peer, in detail'])
    for (let i = 0; i < 500; i++) {
      c.admit()
      c.refusedPeer(() => assert.fail('a detail line inside the interval'))
    }
    assert.equal(lines.length, 1, 'no line per refusal')
    advance(REFUSAL_REPORT_MS)
    c.admit()
    assert.equal(lines.length, 2)
    assert.match(lines[1], /refused 500 from other users or unknown peers, 501 over the cap of 1 connections/)
  })
})
