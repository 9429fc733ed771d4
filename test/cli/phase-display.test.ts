// The words of the phase spinner (src/cli/phase-display.ts); drawing it is
// test/integration/tty-progress.test.ts.
import assert from 'node:assert/strict'
import {phaseText} from '../../src/cli/phase-display.js'
import {phaseEvent} from '../../src/core/sync/progress.js'

describe('phase spinner text', () => {
  it('names each phase of a push and a full sync', () => {
    assert.equal(phaseText(phaseEvent('connect')), 'connecting to the replica host')
    assert.equal(phaseText(phaseEvent('freeze')), 'freezing the point in time')
    assert.equal(phaseText(phaseEvent('send', 12)), 'sending 12 blocks')
    assert.equal(phaseText(phaseEvent('send', 1)), 'sending 1 block')
    assert.equal(phaseText(phaseEvent('commit')), 'committing on the replica host')
    assert.equal(phaseText(phaseEvent('verify')), 'verifying the replica')
  })

  it('leaves a full sync comparing bytes to the transfer bar, and done to nothing', () => {
    assert.equal(phaseText({...phaseEvent('compare'), bytesTotal: 1 << 20}), undefined)
    assert.equal(phaseText(phaseEvent('compare')), 'comparing')
    assert.equal(phaseText(phaseEvent('done')), undefined)
  })
})
