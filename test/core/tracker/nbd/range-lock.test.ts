import assert from 'node:assert/strict'
import {RangeLocks} from '../../../../src/core/tracker/nbd/range-lock.js'

const tick = (): Promise<void> => new Promise((r) => setImmediate(r))

describe('nbd range locks', () => {
  it('lets overlapping reads run together', async () => {
    const l = new RangeLocks()
    const a = await l.acquire(0, 100, false)
    const b = await l.acquire(50, 100, false)
    assert.equal(l.size, 2)
    a()
    b()
    assert.equal(l.size, 0)
  })

  it('lets writes to disjoint ranges run together', async () => {
    const l = new RangeLocks()
    const a = await l.acquire(0, 100, true)
    const b = await l.acquire(100, 100, true)
    a()
    b()
  })

  it('orders an overlapping write after an earlier read, and a later read after it', async () => {
    const l = new RangeLocks()
    const order: string[] = []
    const r1 = await l.acquire(0, 10, false)
    const w = l.acquire(5, 10, true).then((u) => (order.push('write'), u))
    const r2 = l.acquire(12, 1, false).then((u) => (order.push('read2'), u))
    await tick()
    assert.equal(order.length, 0)
    order.push('read1')
    r1()
    const uw = await w
    await tick()
    assert.deepEqual(order, ['read1', 'write'])
    uw()
    ;(await r2)()
    assert.deepEqual(order, ['read1', 'write', 'read2'])
  })

  it('applies overlapping writes in arrival order', async () => {
    const l = new RangeLocks()
    const order: number[] = []
    const ps = [0, 1, 2, 3].map((i) => l.acquire(i, 10, true).then(async (u) => {
      order.push(i)
      await tick()
      u()
    }))
    await Promise.all(ps)
    assert.deepEqual(order, [0, 1, 2, 3])
  })

  it('releasing twice is harmless', async () => {
    const l = new RangeLocks()
    const u = await l.acquire(0, 1, true)
    u()
    u()
    assert.equal(l.size, 0)
  })
})
