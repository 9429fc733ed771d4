import assert from 'node:assert/strict'
import {trackerChecks} from '../../bench/tracker-checks.js'
import type {BenchRow} from '../../bench/bench-common.js'

const row = (name: string, seconds: number, paired?: number): BenchRow => ({
  section: 'tracker',
  name,
  seconds,
  bytes: 1 << 30,
  runs: [seconds],
  ...(paired ? {paired} : {}),
})

describe('bench tracker verdicts', () => {
  it('judge a row by its runs paired with qemu-nbd runs where it has them, and note the ratio of the medians beside', () => {
    // qemu-nbd's row holds runs of every phase (0.28 s median); the cold start ran while the host was
    // slower: 0.42 s, each run ~0.93x the qemu-nbd run just before it.
    const rows = [
      row('seq 64k qd1: qemu-nbd', 0.28),
      row('seq 64k qd1: vdrep track (dirty)', 0.29, 0.95),
      row('seq 64k qd1: vdrep track (first write after a push)', 0.28),
      row('seq 64k qd1: vdrep track (first write, cold start)', 0.42, 0.93),
    ]
    const checks = trackerChecks(rows)
    const cold = checks.find((c) => c.label.includes('cold start'))
    assert.ok(cold && cold.pass === true && Math.abs((cold.ratio ?? 0) - 0.93) < 1e-9, JSON.stringify(cold))
    assert.match(cold.label, /\(paired runs\)/)
    assert.match(cold.note ?? '', /medians of all runs: throughput vdrep ÷ qemu-nbd 0\.67x/)
    const dirty = checks.find((c) => c.label.includes('(dirty)'))
    assert.ok(dirty && Math.abs((dirty.ratio ?? 0) - 1 / 0.95) < 1e-9 && dirty.pass === true)
    // A row without pairs: the ratio of the medians, as before.
    const push = checks.find((c) => c.label.includes('after a push'))
    assert.ok(push && Math.abs((push.ratio ?? 0) - 1) < 1e-9 && !push.label.includes('paired') && push.note === undefined)
  })
})
