// Where a local target's receiver runs: this thread for small disks, a worker from WORKER_MIN_DISK.
import assert from 'node:assert/strict'
import {localReceiverCarrier, WORKER_MIN_DISK} from '../../../src/core/transport/connect.js'

describe('local receiver carrier', () => {
  const saved = process.env.VDREP_LOCAL_RECEIVER
  afterEach(() => {
    if (saved === undefined) delete process.env.VDREP_LOCAL_RECEIVER
    else process.env.VDREP_LOCAL_RECEIVER = saved
  })

  it('follows the disk size unless VDREP_LOCAL_RECEIVER says otherwise', () => {
    delete process.env.VDREP_LOCAL_RECEIVER
    assert.equal(localReceiverCarrier(1 << 30), 'inline')
    assert.equal(localReceiverCarrier(undefined), 'inline')
    assert.equal(localReceiverCarrier(WORKER_MIN_DISK - 1), 'inline')
    assert.equal(localReceiverCarrier(WORKER_MIN_DISK), 'worker')
    process.env.VDREP_LOCAL_RECEIVER = 'worker'
    assert.equal(localReceiverCarrier(1 << 20), 'worker')
    process.env.VDREP_LOCAL_RECEIVER = 'inline'
    assert.equal(localReceiverCarrier(WORKER_MIN_DISK * 4), 'inline')
    process.env.VDREP_LOCAL_RECEIVER = 'bogus'
    assert.equal(localReceiverCarrier(1 << 20), 'inline')
  })
})
