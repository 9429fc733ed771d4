// src/core/transport/peer-watchdog.ts: a session where the peer says nothing for the timeout
// fails with PEER_TIMEOUT naming the phase; any byte from the peer restarts the clock, bytes of
// ours the tunnel takes do not (a stopped receiver's buffers take them), unless the peer does
// not speak KEEPALIVE; time our input is paused, or our loop stood still, is not the peer's
// silence; nothing is timed before the first frame is sent.
import assert from 'node:assert/strict'
import {FrameType} from '../../../src/core/protocol/frame.js'
import {PeerWatchdog, phaseOf, type WatchedSession} from '../../../src/core/transport/peer-watchdog.js'
import type {TransportError} from '../../../src/core/errors.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

type TestSession = WatchedSession & {bytes: number; sent: number; legacy: boolean; paused: boolean}

function session(over: Partial<WatchedSession> = {}): TestSession {
  const s: TestSession = {
    bytes: 0,
    sent: 0,
    legacy: false,
    paused: false,
    heard: () => s.bytes,
    taken: () => s.sent,
    speaks: () => !s.legacy,
    deaf: () => s.paused,
    started: () => true,
    lastSent: () => FrameType.BUNDLE_END as number,
    lastReceived: () => FrameType.HELLO_OK as number,
    ...over,
  }
  return s
}

describe('PeerWatchdog', () => {
  it('fires after the timeout without activity, with PEER_TIMEOUT naming host and phase', async () => {
    let err: TransportError | undefined
    const w = new PeerWatchdog(session(), 200, 'backup@replica:22 (port 44046)', (e) => (err = e))
    w.start()
    await sleep(450)
    w.stop()
    assert.equal(err?.code, 'PEER_TIMEOUT')
    assert.match(err!.message, /backup@replica:22 .*committed the bundle/)
  })

  it('any activity restarts the clock; nothing is timed before the first frame', async () => {
    let fired = false
    const s = session()
    const w = new PeerWatchdog(s, 200, 'h', () => (fired = true))
    w.start()
    for (let i = 0; i < 8; i++) {
      s.bytes += 1
      await sleep(60)
    }
    assert.equal(fired, false, 'a trickle is life')
    w.stop()
    const idle = new PeerWatchdog(session({started: () => false}), 100, 'h', () => (fired = true))
    idle.start()
    await sleep(300)
    idle.stop()
    assert.equal(fired, false, 'not started: a push still freezing its record before its hello')
  })

  it('our writes still draining are not life from a receiver that speaks KEEPALIVE (a stopped one behind full buffers)', async () => {
    let err: TransportError | undefined
    const s = session({lastSent: () => FrameType.DATA})
    const w = new PeerWatchdog(s, 200, 'h', (e) => (err = e))
    w.start()
    for (let i = 0; i < 10 && !err; i++) {
      s.sent += 65536 // the tunnel takes a block every 50 ms (sshd's window, the kernel's buffers)
      await sleep(50)
    }
    w.stop()
    assert.equal(err?.code, 'PEER_TIMEOUT', 'bytes taken while the peer says nothing kept the session alive')
    assert.match(err!.message, /while blocks were being sent/)
  })

  it('a receiver without KEEPALIVE (an older vdrep): bytes it takes are life, as it has nothing to say while it takes a bundle', async () => {
    let fired = false
    const s = session()
    s.legacy = true
    const w = new PeerWatchdog(s, 200, 'h', () => (fired = true))
    w.start()
    for (let i = 0; i < 8; i++) {
      s.sent += 1
      await sleep(60)
    }
    w.stop()
    assert.equal(fired, false)
  })

  it('time while our own input is paused on unread bytes is not counted against the peer', async () => {
    let fired = false
    const s = session()
    s.paused = true
    const w = new PeerWatchdog(s, 150, 'h', () => (fired = true))
    w.start()
    await sleep(400)
    assert.equal(fired, false, 'we were the slow side')
    s.paused = false
    await sleep(400)
    w.stop()
    assert.equal(fired, true, 'resumed, and still nothing from the peer')
  })

  it('a tick far later than asked (our event loop stood still) restarts the clock instead of firing', async () => {
    let fired = false
    const w = new PeerWatchdog(session(), 200, 'h', () => (fired = true))
    w.start()
    await sleep(60)
    const until = performance.now() + 260 // a synchronous step longer than the timeout
    while (performance.now() < until) {
      // busy
    }
    await sleep(60)
    w.stop()
    assert.equal(fired, false, 'the bytes that arrived meanwhile were not read yet')
  })

  it('names the phases', () => {
    assert.match(phaseOf(FrameType.HELLO, 0), /hello/)
    assert.match(phaseOf(FrameType.DONE, FrameType.CHECKPOINT_ACK), /proved the full sync/)
    assert.match(phaseOf(FrameType.DATA, FrameType.HELLO_OK), /blocks were being sent/)
    assert.match(phaseOf(FrameType.POINTS_REQUEST, 0), /restore points/)
  })
})
