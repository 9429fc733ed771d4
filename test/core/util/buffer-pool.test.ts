import assert from 'node:assert/strict'
import {BufferPool, SharedLease} from '../../../src/core/util/buffer-pool.js'

describe('BufferPool and SharedLease', () => {
  it('hands back released buffers, keeps at most `keep`, and drops foreign sizes', () => {
    const pool = new BufferPool(1024, 2)
    const [a, b, c] = [pool.acquire(), pool.acquire(), pool.acquire()]
    assert.equal(a.length, 1024)
    pool.release(a)
    pool.release(b)
    pool.release(c)
    assert.equal(pool.idle, 2, 'the third is left to the GC')
    pool.release(Buffer.alloc(10))
    assert.equal(pool.idle, 2, 'a buffer of another size is not taken')
    const again = pool.acquire()
    assert.ok(again === b || again === a, 'a released buffer is reused')
  })

  it('returns a leased buffer only when the holder and every borrower let go, once each', () => {
    const pool = new BufferPool(64, 4)
    const lease = new SharedLease(pool, pool.acquire())
    const r1 = lease.retain()
    const r2 = lease.retain()
    lease.drop() // the holder is done with the run
    assert.equal(pool.idle, 0)
    r1()
    r1() // a second call of the same release counts once
    assert.equal(pool.idle, 0, 'one borrower still has it')
    r2()
    assert.equal(pool.idle, 1)
  })
})
