import assert from 'node:assert/strict'
import {BufferPool, SharedLease} from '../../../src/core/util/buffer-pool.js'

describe('SharedLease', () => {
  it('gives a pooled buffer back only when the holder and every borrower let go, once each', () => {
    const pool = new BufferPool(1 << 20, 1 << 16)
    const buf = pool.take(64)
    const lease = new SharedLease(pool, buf)
    const r1 = lease.retain()
    const r2 = lease.retain()
    lease.drop() // the holder is done with the run
    assert.notEqual(pool.take(64), buf, 'still lent: a take gets another buffer')
    r1()
    r1() // a second call of the same release counts once
    assert.notEqual(pool.take(64), buf, 'one borrower still has it')
    r2()
    assert.equal(pool.take(64), buf, 'back in the pool once everyone let go')
  })
})
