// Tests of src/core/protocol/frame-reader.ts's one idle timer: a reader whose peer ended, or
// that was aborted, leaves no timer armed. An armed timer held its reader (and the socket
// reader's slabs behind it) in the timer list until it lapsed, minutes later: a serve taking a
// push a second grew without bound (test/integration/serve-memory.test.ts). The timers are
// counted by wrapping the global setTimeout/clearTimeout for the length of each test.
import assert from 'node:assert/strict'
import {PassThrough} from 'node:stream'
import {FrameReader} from '../../../src/core/protocol/frame-reader.js'

// Two frames: CHECKPOINT (16-byte payload), DONE (empty).
const STREAM = Buffer.from('564407001000000001000000000000000200000000000000' + '5644090000000000', 'hex')
/** Long enough never to fire within a test: a timer still armed at the end is one left behind. */
const IDLE_MS = 600_000

/** Timers armed and neither cleared nor fired, while installed. */
class TimerCount {
  private readonly live = new Set<NodeJS.Timeout>()
  private readonly realSet = globalThis.setTimeout
  private readonly realClear = globalThis.clearTimeout
  /** Idle-length timers armed so far. */
  armed = 0

  install(): void {
    const live = this.live
    const realSet = this.realSet
    const realClear = this.realClear
    const wrappedSet = (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]): NodeJS.Timeout => {
      const t: NodeJS.Timeout = realSet(
        (...a: unknown[]) => {
          live.delete(t)
          fn(...a)
        },
        ms,
        ...args,
      )
      live.add(t)
      if ((ms ?? 0) >= IDLE_MS) this.armed++
      return t
    }
    globalThis.setTimeout = wrappedSet as unknown as typeof globalThis.setTimeout
    globalThis.clearTimeout = ((t?: NodeJS.Timeout | string | number) => {
      if (t !== undefined && typeof t === 'object') live.delete(t)
      realClear(t)
    }) as typeof globalThis.clearTimeout
  }

  uninstall(): void {
    globalThis.setTimeout = this.realSet
    globalThis.clearTimeout = this.realClear
    for (const t of this.live) this.realClear(t)
  }

  /** Live timers of at least `ms` (the idle timer's; mocha's own are shorter). */
  liveOf(ms: number): number {
    let n = 0
    for (const t of this.live) if ((t as unknown as {_idleTimeout: number})._idleTimeout >= ms) n++
    return n
  }
}

const tick = () => new Promise((res) => setImmediate(res))

describe('FrameReader idle timer: none left behind', () => {
  let timers: TimerCount
  beforeEach(() => {
    timers = new TimerCount()
    timers.install()
  })
  afterEach(() => timers.uninstall())

  it('at the peer’s end (next() gives null) the timer a wait armed is cleared', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s, IDLE_MS)
    const first = r.next() // waits: arms the timer
    await tick()
    assert.equal(timers.liveOf(IDLE_MS), 1, 'a wait on the peer arms the idle timer')
    s.write(STREAM)
    assert.ok(await first)
    assert.ok(await r.next())
    s.end()
    assert.equal(await r.next(), null)
    assert.equal(timers.liveOf(IDLE_MS), 0, 'the idle timer outlived the end of the stream')
  })

  it('after abort() the timer of the wait it cut is cleared', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s, IDLE_MS)
    const waiting = r.next()
    await tick()
    assert.equal(timers.liveOf(IDLE_MS), 1)
    r.abort(new Error('the session failed on its own side'))
    await assert.rejects(waiting, /failed on its own side/)
    assert.equal(timers.liveOf(IDLE_MS), 0, 'the idle timer outlived abort()')
    s.destroy()
  })

  it('one timer for many waits, not one per wait', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s, IDLE_MS)
    for (let i = 0; i < 20; i++) {
      const f = r.next()
      await tick()
      s.write(STREAM.subarray(0, 24))
      assert.ok(await f)
    }
    assert.equal(timers.armed, 1)
    s.end()
    assert.equal(await r.next(), null)
    assert.equal(timers.liveOf(IDLE_MS), 0)
  })
})
