// The tracker's in-memory range lock (NBD requests of one export): exclusion where a write
// overlaps, sharing where it does not, arrival order, and release.

import assert from 'node:assert/strict'
import {RangeLocks, type Unlock} from '../../../../src/core/tracker/nbd/range-lock.js'

const tick = (): Promise<void> => new Promise((r) => setImmediate(r))

/** Whether the acquisition has resolved yet (after letting pending callbacks run). */
async function granted(p: Promise<Unlock>): Promise<boolean> {
  let done = false
  void p.then(() => (done = true))
  await tick()
  return done
}

describe('nbd range locks', () => {
  it('lets overlapping reads run together', async () => {
    const l = new RangeLocks()
    const a = l.acquire(0, 100, false)
    const b = l.acquire(50, 100, false)
    assert.equal(await granted(a), true)
    assert.equal(await granted(b), true, 'a read waited for an overlapping read')
    assert.equal(l.size, 2)
    ;(await a)()
    ;(await b)()
    assert.equal(l.size, 0)
  })

  it('lets writes to disjoint (and adjacent) ranges run together', async () => {
    const l = new RangeLocks()
    const a = l.acquire(0, 100, true)
    const b = l.acquire(100, 100, true) // [100, 200) touches [0, 100) but does not overlap it
    const c = l.acquire(500, 1, true)
    for (const p of [a, b, c]) assert.equal(await granted(p), true, 'a write waited for a disjoint write')
    assert.equal(l.size, 3)
  })

  for (const [first, second] of [
    ['read', 'write'],
    ['write', 'read'],
    ['write', 'write'],
  ] as const) {
    it(`holds an overlapping ${second} back until the earlier ${first} is released`, async () => {
      const l = new RangeLocks()
      const held = await l.acquire(10, 10, first === 'write')
      const waiting = l.acquire(19, 5, second === 'write') // overlaps by one byte
      assert.equal(await granted(waiting), false, `the ${second} ran while the ${first} held the range`)
      assert.equal(l.size, 2, 'the waiter has its slot already')
      held()
      assert.equal(await granted(waiting), true, `the ${second} still waits after the release`)
    })
  }

  it('holds a write back until every overlapping earlier holder is released, not only the first', async () => {
    const l = new RangeLocks()
    const r1 = await l.acquire(0, 10, false)
    const r2 = await l.acquire(5, 10, false)
    const w = l.acquire(0, 20, true)
    r1()
    assert.equal(await granted(w), false, 'the write ran while a read still held part of its range')
    r2()
    assert.equal(await granted(w), true)
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
    const ps = [0, 1, 2, 3].map((i) =>
      l.acquire(i, 10, true).then(async (u) => {
        order.push(i)
        await tick()
        u()
      }),
    )
    await Promise.all(ps)
    assert.deepEqual(order, [0, 1, 2, 3])
    assert.equal(l.size, 0)
  })

  it('releasing twice is harmless: it frees no one else', async () => {
    const l = new RangeLocks()
    const u = await l.acquire(0, 1, true)
    u()
    const next = await l.acquire(0, 1, true)
    const waiting = l.acquire(0, 1, true)
    u() // the stale unlock must not release `next`
    assert.equal(l.size, 2)
    assert.equal(await granted(waiting), false, 'a second release of an old holder let a waiter in')
    next()
    assert.equal(await granted(waiting), true)
    ;(await waiting)()
    assert.equal(l.size, 0)
  })

  it('take() gives the unlock at once when nothing conflicts, and a promise that waits when something does', async () => {
    const l = new RangeLocks()
    const read = l.take(0, 10, false)
    assert.equal(typeof read, 'function', 'no conflict: no promise')
    const alsoRead = l.take(5, 10, false)
    assert.equal(typeof alsoRead, 'function', 'reads share')
    const write = l.take(8, 4, true)
    assert.ok(write instanceof Promise, 'a write over two reads waits')
    assert.equal(await granted(write), false)
    ;(read as Unlock)()
    assert.equal(await granted(write), false, 'still one read over it')
    ;(alsoRead as Unlock)()
    assert.equal(await granted(write), true)
    const later = l.take(0, 100, false)
    assert.ok(later instanceof Promise, 'a later read waits for the write it overlaps')
    ;(await write)()
    ;(await later)()
    assert.equal(l.size, 0)
  })
})
