// The shared bandwidth budget (`push --all --jobs N`): transfers drawing from one budget take
// about as long together as their bytes at the budget's rate, share it fairly, and a transfer's
// own cap still holds under a larger budget.
import assert from 'node:assert/strict'
import {SharedBudget} from '../../../src/core/sync/shared-budget.js'
import {Throttle} from '../../../src/core/sync/throttle.js'

const KiB = 1024
const MiB = 1 << 20

/** Send `bytes` in 64 KiB chunks through `t`; resolves with the ms it took. */
async function transfer(t: Throttle, bytes: number): Promise<number> {
  const t0 = performance.now()
  for (let sent = 0; sent < bytes; sent += 64 * KiB) await t.take(64 * KiB)
  return performance.now() - t0
}

describe('shared bandwidth budget', function () {
  this.timeout(20_000)

  it('two transfers under one budget take about twice as long as one, and finish together', async () => {
    const rate = 8 * MiB
    // A budget starts with a tenth of a second's worth: 4 MiB keeps that head start small.
    const one = await transfer(new Throttle(0, new SharedBudget(rate)), 4 * MiB)
    const budget = new SharedBudget(rate)
    const t0 = performance.now()
    const [a, b] = await Promise.all([transfer(new Throttle(0, budget), 4 * MiB), transfer(new Throttle(0, budget), 4 * MiB)])
    const both = performance.now() - t0
    const ratio = both / one
    assert.ok(ratio > 1.7 && ratio < 2.8, `two transfers took ${both.toFixed(0)} ms, one ${one.toFixed(0)} ms: ratio ${ratio.toFixed(2)}`)
    // Fair: neither waits behind the other's whole transfer.
    assert.ok(both > ((0.9 * 8 * MiB - rate / 10) / rate) * 1000, `8 MiB at 8 MiB/s in ${both.toFixed(0)} ms`)
    assert.ok(Math.abs(a - b) < 0.25 * both, `finished ${a.toFixed(0)} and ${b.toFixed(0)} ms`)
  })

  it("without a budget nothing waits; a transfer's own cap still holds under a larger budget", async () => {
    assert.ok((await transfer(new Throttle(0), 4 * MiB)) < 100)
    const capped = await transfer(new Throttle(4 * MiB, new SharedBudget(64 * MiB)), 2 * MiB)
    assert.ok(capped > 350, `2 MiB at 4 MiB/s took only ${capped.toFixed(0)} ms`)
    assert.throws(() => new SharedBudget(0), /positive rate/)
  })
})
