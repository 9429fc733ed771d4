// Tests of src/core/receiver/idle-trim.ts: the serve collects and trims once, after its last
// session ended and no other ran for the delay; never while a session runs; never after stop;
// and its collection leaves V8's optimized code in place.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {IdleTrim} from '../../../src/core/receiver/idle-trim.js'
import {keepFreedMemory} from '../../../src/core/native/performance-hints.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('IdleTrim', () => {
  it('trims once after the last of several sessions ends, not once per session', async () => {
    const t = new IdleTrim(() => 0, 30)
    t.sessionEnded()
    await sleep(10)
    t.sessionEnded()
    t.sessionEnded()
    assert.equal(t.trims, 0)
    await sleep(80)
    assert.equal(t.trims, 1)
  })

  it('does not trim while a session is running (it trims when that one ends)', async () => {
    let running = 1
    const t = new IdleTrim(() => running, 20)
    t.sessionEnded() // another session ended; this one still runs
    await sleep(60)
    assert.equal(t.trims, 0)
    running = 0
    t.sessionEnded()
    await sleep(60)
    assert.equal(t.trims, 1)
  })

  it('cancel() (the serve stops) leaves no trim pending', async () => {
    const t = new IdleTrim(() => 0, 20)
    t.sessionEnded()
    t.cancel()
    await sleep(60)
    assert.equal(t.trims, 0)
  })

  it('hands memory back: resident memory falls after freed buffers are collected and trimmed', async function () {
    // As every vdrep command sets it: freed buffers stay mapped for reuse (up to 256 MiB).
    if (!keepFreedMemory()) this.skip() // no addon or not glibc: nothing to measure
    const rss = () => process.memoryUsage().rss
    // Buffers in the heap (below the mmap threshold), touched, then dropped.
    let held: Buffer[] | null = Array.from({length: 48}, () => Buffer.alloc(1 << 20, 1))
    const full = rss()
    held = null
    const t = new IdleTrim(() => 0, 1)
    t.sessionEnded()
    await sleep(200)
    assert.equal(t.trims, 1)
    assert.equal(held, null)
    assert.ok(rss() < full - 24 * (1 << 20), `resident ${(rss() / 2 ** 20).toFixed(0)} MiB after the trim, ${(full / 2 ** 20).toFixed(0)} before`)
  })

  it('keeps optimized code: a method compiled in a session, whose objects are all dead, is still compiled after the trim', () => {
    // A forced collection (gc()) drops the hidden class no live object uses, and with it every
    // function compiled against it: each session of a serve compiled its receive path again.
    // In a child: V8's natives syntax says whether the method is optimized (bit 16).
    const script = `
      const {IdleTrim} = await import(${JSON.stringify(new URL('../../../src/core/receiver/idle-trim.js', import.meta.url).href)})
      class Session { constructor(n) { this.n = n; this.k = 2 } step(i) { return this.n + i * this.k } }
      const run = () => { const s = new Session(1); let t = 0; for (let i = 0; i < 100; i++) t += s.step(i); return t }
      %PrepareFunctionForOptimization(Session.prototype.step);
      run(); run();
      %OptimizeFunctionOnNextCall(Session.prototype.step);
      run()
      const optimized = () => (%GetOptimizationStatus(Session.prototype.step) & 16) !== 0
      const before = optimized()
      const trim = new IdleTrim(() => 0, 1)
      trim.sessionEnded()
      await new Promise((r) => setTimeout(r, 300))
      console.log(JSON.stringify({before, after: optimized(), trims: trim.trims}))
    `
    const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], {encoding: 'utf8'})
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stderr, '', 'nothing on stderr (no ExperimentalWarning in the serve log)')
    assert.deepEqual(JSON.parse(r.stdout), {before: true, after: true, trims: 1})
  })
})
