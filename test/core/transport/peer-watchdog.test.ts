// src/core/transport/peer-watchdog.ts: a session where nothing moves for the timeout fails
// with PEER_TIMEOUT naming the phase; any byte either way restarts the clock; nothing is timed
// before the first frame is sent.
import assert from 'node:assert/strict'
import {FrameType} from '../../../src/core/protocol/frame.js'
import {PeerWatchdog, phaseOf, type WatchedSession} from '../../../src/core/transport/peer-watchdog.js'
import type {TransportError} from '../../../src/core/errors.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function session(over: Partial<WatchedSession> = {}): WatchedSession & {bytes: number} {
  const s: WatchedSession & {bytes: number} = {
    bytes: 0,
    activity: () => s.bytes,
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

  it('names the phases', () => {
    assert.match(phaseOf(FrameType.HELLO, 0), /hello/)
    assert.match(phaseOf(FrameType.DONE, FrameType.CHECKPOINT_ACK), /proved the full sync/)
    assert.match(phaseOf(FrameType.DATA, FrameType.HELLO_OK), /blocks were being sent/)
    assert.match(phaseOf(FrameType.POINTS_REQUEST, 0), /restore points/)
  })
})
