import assert from 'node:assert/strict'
import {pushIsDue} from '../../../src/core/sync/due.js'

describe('pushIsDue', () => {
  const RPO = 15 * 60
  const now = 1_800_000_000_000

  it('never synced: due', () => {
    assert.equal(pushIsDue(0, RPO, now), true)
  })

  it('a recent sync is not due; one near the RPO (less the margin) is', () => {
    assert.equal(pushIsDue(now - 60_000, RPO, now), false)
    assert.equal(pushIsDue(now - (RPO * 1000 - 60_000 - RPO * 100), RPO, now), true)
  })

  it('a last sync in the future (the clock went back) is due, however far', () => {
    assert.equal(pushIsDue(now + 1, RPO, now), true)
    assert.equal(pushIsDue(now + 3600_000, RPO, now), true)
  })
})
