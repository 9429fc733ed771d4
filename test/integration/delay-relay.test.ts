// The delay relay (test/helpers/delay-relay.ts) that the latency and WAN benches measure
// through: a request/response costs one RTT (2 × the one-way delay), a bulk transfer is not
// slowed by it (chunks are scheduled by arrival, not slept on in series), and every byte
// arrives, in order, with a half-close carried through.
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {createServer, connect, type AddressInfo, type Server, type Socket} from 'node:net'
import {startDelayRelay, type DelayRelay} from '../helpers/delay-relay.js'

function echoServer(): Promise<Server> {
  const srv = createServer({allowHalfOpen: true}, (s) => s.pipe(s))
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)))
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({port, host: '127.0.0.1', noDelay: true}, () => resolve(s))
    s.once('error', reject)
  })
}

/** Sends `data` through an echo and returns the sha256 of what came back and the seconds it took. */
async function echoAll(port: number, data: Buffer): Promise<{digest: string; seconds: number}> {
  const s = await open(port)
  const h = createHash('sha256')
  const t0 = performance.now()
  const done = new Promise<void>((resolve, reject) => {
    s.on('data', (c: Buffer) => h.update(c))
    s.on('end', () => resolve())
    s.on('error', reject)
  })
  s.end(data)
  await done
  s.destroy()
  return {digest: h.digest('hex'), seconds: (performance.now() - t0) / 1000}
}

describe('delay relay (test helper)', function () {
  this.timeout(60_000)
  let echo: Server
  let relay: DelayRelay
  const DELAY = 10

  before(async () => {
    echo = await echoServer()
    relay = await startDelayRelay({targetPort: (echo.address() as AddressInfo).port, delayMs: DELAY})
  })
  after(async () => {
    await relay.close()
    await new Promise((r) => echo.close(r))
  })

  it('adds one RTT (2 × the delay) to each request/response, and no more', async () => {
    const s = await open(relay.port)
    const times: number[] = []
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now()
      s.write(Buffer.from([i]))
      await new Promise<void>((resolve) => s.once('data', () => resolve()))
      times.push(performance.now() - t0)
    }
    s.destroy()
    assert.equal(relay.turns, 9, 'ten requests, each after the previous answer: nine turns')
    times.sort((a, b) => a - b)
    const median = times[5]
    assert.ok(median >= 2 * DELAY - 0.5, `median round trip ${median.toFixed(1)} ms < ${2 * DELAY} ms`)
    assert.ok(median < 2 * DELAY + 8, `median round trip ${median.toFixed(1)} ms: the relay adds more than its delay`)
  })

  it('keeps the throughput: 128 MiB echoed through it arrive whole, in order, about as fast as without it', async () => {
    const data = randomBytes(128 << 20)
    const want = createHash('sha256').update(data).digest('hex')
    const direct = await echoAll((echo.address() as AddressInfo).port, data)
    const relayed = await echoAll(relay.port, data)
    assert.equal(direct.digest, want)
    assert.equal(relayed.digest, want, 'the relay lost, duplicated or reordered bytes')
    // Serial sleeps of 10 ms per 64 KiB chunk would take 2 × 2048 × 10 ms = 41 s.
    const allowed = direct.seconds * 3 + 1
    assert.ok(relayed.seconds < allowed, `relayed ${relayed.seconds.toFixed(2)} s against ${direct.seconds.toFixed(2)} s direct`)
    assert.equal(relay.bytes.up >= data.length, true)
  })
})
