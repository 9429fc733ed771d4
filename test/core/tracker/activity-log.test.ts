// The tracker's activity log with a recording store and a fake clock: a cold extent costs one
// transaction (shared by the writes that came meanwhile), a hot one nothing; the least
// recently used extent is evicted, its bits made durable before the log page names another
// extent; a lease that ran out costs a transaction again; more cold extents than slots make
// the rest durable in the bitmap instead.
import assert from 'node:assert/strict'
import {emptyActivityLog, EMPTY_SLOT, type ActivityLogImage} from '../../../src/core/psf/activity-log.js'
import {AL_SLOTS_PER_PAGE} from '../../../src/core/psf/layout.js'
import {ActivityLog, LEASE_MARGIN_MS, LEASE_MS} from '../../../src/core/tracker/activity-log.js'
import {slotsToFill} from '../../../src/core/tracker/lru-slots.js'

function harness(slots: number, blocks = 64 * 100, extentBlocks = 64) {
  const calls: string[] = []
  let clock = 1_000_000
  let chain: Promise<unknown> = Promise.resolve()
  const image = emptyActivityLog(slots)
  const al = new ActivityLog(image, extentBlocks, blocks, {
    store: {
      async writeActivityLog(img: ActivityLogImage, pages: Iterable<number>) {
        calls.push(`log ${[...pages].join(',')}: ${[...img.slots].map((e) => (e === EMPTY_SLOT ? '-' : e)).join(' ')} lease +${img.leaseEndMs - clock}`)
      },
    },
    async persistExtents(extents: number[]) {
      calls.push(`persist ${extents.join(',')}`)
    },
    serial<T>(fn: () => Promise<T>): Promise<T> {
      const p = chain.then(fn)
      chain = p.catch(() => {})
      return p
    },
    now: () => clock,
  })
  return {al, calls, image, advance: (ms: number) => (clock += ms)}
}

describe('tracker activity log', () => {
  it('a cold extent waits for one transaction; then a hot one costs nothing', async () => {
    const {al, calls} = harness(4)
    const p = al.enter(5, 5)
    assert.ok(p, 'cold: a transaction to wait for')
    await p
    assert.deepEqual(calls, [`log 0: 0 - - - lease +${LEASE_MS}`])
    assert.equal(al.enter(0, 63), undefined, 'the whole extent is hot now')
    assert.equal(al.hotCount, 1)
  })

  it('cold writes that come together share one transaction (group commit)', async () => {
    const {al, calls} = harness(4)
    const ps = [al.enter(64, 64), al.enter(130, 130), al.enter(200, 260)]
    assert.ok(
      ps.every((p) => p === ps[0]),
      'one promise for all',
    )
    await ps[0]
    assert.equal(calls.length, 1)
    assert.match(calls[0], /^log 0: 1 2 3 4 lease/)
  })

  it('evicts the least recently used extent, its bits durable before the log page no longer names it', async () => {
    const {al, calls} = harness(2)
    await al.enter(0, 0)
    await al.enter(64, 64)
    assert.equal(al.enter(1, 1), undefined) // extent 0 used last
    await al.enter(128, 128)
    assert.deepEqual(calls.slice(2), ['persist 1', `log 0: 0 2 lease +${LEASE_MS}`])
    assert.ok(al.enter(64, 64), 'extent 1 is cold again')
    assert.equal(al.enter(0, 0), undefined)
    assert.deepEqual(al.stats, {alTransactions: 3, alHotted: 3, alEvicted: 1, alWaits: 4, alWaitMs: 0})
  })

  it('a lease about to run out costs a transaction of page 0 alone, even in a hot extent', async () => {
    const {al, calls, advance} = harness(2)
    await al.enter(0, 0)
    advance(LEASE_MS - LEASE_MARGIN_MS - 1)
    assert.equal(al.enter(0, 0), undefined, 'inside the lease')
    advance(1)
    const p = al.enter(0, 0)
    assert.ok(p, 'no write starts within the margin of the lease end')
    await p
    assert.deepEqual(calls, [`log 0: 0 - lease +${LEASE_MS}`, `log 0: 0 - lease +${LEASE_MS}`])
  })

  it('the timer renews the lease of a log in use before writes must wait for it', async () => {
    const {al, calls, advance} = harness(2)
    await al.enter(0, 0)
    al.tick() // in use since the last tick, but the lease is young
    advance(LEASE_MS - 2 * LEASE_MARGIN_MS + 1)
    al.enter(0, 0)
    al.tick()
    await al.settle()
    assert.equal(calls.length, 2, 'renewed')
    advance(LEASE_MS)
    al.tick() // not used since the last tick: no renewal
    await al.settle()
    assert.equal(calls.length, 2)
  })

  it('more cold extents than slots: the rest are made durable in the bitmap, not hot', async () => {
    const {al, calls} = harness(2)
    await al.enter(0, 4 * 64 - 1)
    assert.deepEqual(calls, ['persist 2,3', `log 0: 0 1 lease +${LEASE_MS}`])
    assert.ok(al.enter(3 * 64, 3 * 64))
  })

  it('a slot on the second page writes pages 0 (the lease) and 1', async () => {
    const {calls, image} = harness(AL_SLOTS_PER_PAGE + 1, 64 * 3000)
    for (let s = 0; s < AL_SLOTS_PER_PAGE; s++) image.slots[s] = s + 1000 // fill page 0 (not hot in memory: unused)
    const fresh = new ActivityLog(image, 64, 64 * 3000, {
      store: {writeActivityLog: async (_i, pages) => void calls.push([...pages].join(','))},
      persistExtents: async () => {},
      serial: (fn) => fn(),
      now: () => 0,
    })
    assert.equal(fresh.hotCount, AL_SLOTS_PER_PAGE)
    await fresh.enter(0, 0)
    assert.deepEqual(calls, ['0,1'], 'the empty slot on page 1 is taken before any eviction')
  })

  it('a sequential stream makes a window of extents ahead of it hot in one transaction (a quarter of the log, 16 at most); a scattered write does not', async () => {
    const {al, calls} = harness(8) // a window of 2: refilled once the extent 1 ahead is cold
    await al.enter(0, 15)
    assert.equal(al.enter(16, 31), undefined, 'the stream goes on in a hot extent...')
    await al.settle()
    assert.equal(calls.length, 2)
    assert.match(calls[1], /^log 0: 0 1 2 - /, '...and extents 1 and 2 were made hot meanwhile, together')
    assert.equal(al.enter(32, 63), undefined)
    assert.equal(al.enter(64, 79), undefined, 'the stream crosses into extent 1 without waiting')
    await al.settle()
    assert.equal(calls.length, 2, 'extent 2, half a window ahead, is hot: nothing to do yet')
    assert.equal(al.enter(80, 127), undefined)
    assert.equal(al.enter(128, 130), undefined, 'into extent 2')
    await al.settle()
    assert.match(calls[2], /^log 0: 0 1 2 3 4 - /, 'the next window, in one transaction')
    assert.equal(al.enter(16, 16), undefined) // not where the stream was: nothing ahead of it
    await al.settle()
    assert.equal(calls.length, 3)
  })

  it('a long stream: one transaction per window of 16 new extents, and no write waits after the first', async () => {
    const {al, calls, image} = harness(2026, 64 * 400)
    let waited = 0
    for (let b = 0; b < 64 * 200; b += 16) {
      const p = al.enter(b, b + 15)
      if (p) {
        waited++
        await p
      }
      if (b % 64 === 48) await al.settle() // the stream is slower than a transaction
    }
    await al.settle()
    assert.equal(waited, 1, 'only the first write waited (its extent, and the lease)')
    assert.equal(al.stats.alWaits, 1)
    // The first transaction: extent 0 and the window joined it (requests of one turn); then 16 per transaction.
    assert.ok(calls.length <= 2 + Math.ceil(200 / 16), `${calls.length} transactions for 200 extents`)
    for (let e = 0; e < 200; e++) assert.ok(image.slots.includes(e), `extent ${e} named in the log`)
  })

  it('a stream whose requests arrive out of order (the NBD client of qemu) is still prefetched: no write waits after the first', async () => {
    const {al, calls, image} = harness(2026, 64 * 400)
    let waited = 0
    // Each pair of requests of 4 blocks arrives swapped (1, 0, 3, 2, ...): no write starts where
    // the one before it ended.
    for (let k = 0; k < (64 * 200) / 4; k++) {
      const b = 4 * (k ^ 1)
      const p = al.enter(b, b + 3)
      if (p) {
        waited++
        await p
      }
      if (k % 16 === 15) await al.settle() // the stream is slower than a transaction
    }
    await al.settle()
    assert.ok(waited <= 2, `${waited} writes waited (an exact match on the last write's end: most extents)`)
    assert.ok(calls.length <= 3 + Math.ceil(200 / 16), `${calls.length} transactions for 200 extents`)
    for (let e = 0; e < 200; e++) assert.ok(image.slots.includes(e), `extent ${e} named in the log`)
  })

  it('a write near the one before it but into a cold extent (random writes) starts no window', async () => {
    const {al, calls} = harness(8)
    await al.enter(0, 0)
    await al.enter(64, 64) // within an extent of block 1, in cold extent 1
    await al.settle()
    assert.equal(calls.length, 2)
    assert.match(calls[1], /^log 0: 0 1 - - /, 'extent 1 alone, no window after it')
  })

  it('slotsToFill: empty slots in slot order, then the least recently used; as a full sort would', () => {
    const n = 50
    const slots = new Uint32Array(n).fill(EMPTY_SLOT)
    const slotOf = new Int32Array(1000).fill(-1)
    const lastUse = new Float64Array(n)
    let seed = 7
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    for (let s = 0; s < n; s++) {
      if (rnd() < 0.2) continue // empty
      const e = s * 10 + 3
      slots[s] = e
      slotOf[e] = rnd() < 0.1 ? -1 : s // -1: evicted in memory, the slot is free
      lastUse[s] = Math.floor(rnd() * 30) // ties on purpose
    }
    const key = (s: number) => (slots[s] === EMPTY_SLOT || slotOf[slots[s]] !== s ? -1 : lastUse[s])
    const sorted = Array.from({length: n}, (_, i) => i).sort((a, b) => key(a) - key(b))
    for (const k of [0, 1, 3, 17, 49, 50, 80]) assert.deepEqual(slotsToFill(k, slots, slotOf, lastUse), sorted.slice(0, k), `k = ${k}`)
  })
})
