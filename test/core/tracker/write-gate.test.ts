import assert from 'node:assert/strict'
import {WriteGate} from '../../../src/core/tracker/write-gate.js'

const tick = () => new Promise((r) => setImmediate(r))

describe('tracker write gate', () => {
  it('enters at once while open, without a promise', () => {
    const g = new WriteGate()
    assert.equal(g.enter(), undefined)
    assert.equal(g.enter(), undefined)
    assert.equal(g.count, 2)
    g.leave()
    g.leave()
    assert.equal(g.count, 0)
  })

  it('exclusive waits for the writes inside, and holds new ones until it is done', async () => {
    const g = new WriteGate()
    const log: string[] = []
    g.enter()
    const ex = g.exclusive(async () => {
      log.push('exclusive start')
      await tick()
      log.push('exclusive end')
      return 42
    })
    await tick()
    assert.equal(log.length, 0, 'must wait for the write inside')
    const later = g.enter()
    assert.ok(later instanceof Promise)
    void later.then(() => log.push('late write in'))
    g.leave()
    assert.equal(await ex, 42)
    await tick()
    assert.deepEqual(log, ['exclusive start', 'exclusive end', 'late write in'])
    assert.equal(g.count, 1)
  })

  it('two exclusive sections run one after the other; a failing one reopens the gate', async () => {
    const g = new WriteGate()
    const log: string[] = []
    const a = g.exclusive(async () => {
      log.push('a')
      await tick()
      throw new Error('boom')
    })
    const b = g.exclusive(async () => {
      log.push('b')
    })
    await assert.rejects(a, /boom/)
    await b
    assert.deepEqual(log, ['a', 'b'])
    assert.equal(g.enter(), undefined)
  })
})
