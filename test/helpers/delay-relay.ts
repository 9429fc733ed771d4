// A TCP relay that adds a fixed one-way delay in each direction, for WAN measurements where
// netem is not available (no sch_netem here). Each chunk read is sent on at its arrival time
// plus the delay: chunks are queued with their due time and one timer per direction drains
// every chunk that is due, so the delay adds latency and never throughput (no sleep per
// chunk in series). A slow reader on the far side pauses the near side only after
// MAX_QUEUED bytes wait, well above a bandwidth-delay product at these rates. The rate is
// not limited here: `tc ... tbf` does that (the WAN bench).
//
// Used by the latency bench (bench/latency-bench.ts), test/integration/latency.test.ts, and
// the WAN bench's namespaces (test/helpers/netns.ts), in-process or as a process:
//   node dist/test/helpers/delay-relay.js LISTEN_PORT TARGET_HOST:PORT DELAY_MS [LISTEN_HOST]

import {createServer, connect, type Socket, type AddressInfo} from 'node:net'
import {pathToFileURL} from 'node:url'

export interface DelayRelayOptions {
  /** Where to forward to. */
  targetHost?: string
  targetPort: number
  /** One-way delay in milliseconds, the same both ways (RTT = 2 × this), or per direction. */
  delayMs: number | {up: number; down: number}
  /** Default 127.0.0.1. */
  listenHost?: string
  /** Default 0 (a free port). */
  listenPort?: number
}

export interface DelayRelay {
  /** The port clients connect to. */
  port: number
  host: string
  /** Bytes relayed client → target and back, over all connections. */
  bytes: {up: number; down: number}
  /** Connections accepted so far. */
  connections: number
  /**
   * Turns, over all connections: the times the client sent after it had been sent something
   * since its last send. In a request/response exchange that is the round trips it waited
   * (SSH's key exchange and login included; TCP's handshake is not seen). Traffic flowing
   * both ways at once (a full sync's statuses and data) counts more turns than it waits.
   */
  turns: number
  close(): Promise<void>
}

/** Queued bytes per direction beyond which the source is paused (flow control still applies). */
const MAX_QUEUED = 64 << 20

/** Sends what `from` reads to `to`, each chunk `delayMs` after it arrived; ends `to` likewise. */
function delayedPipe(from: Socket, to: Socket, delayMs: number, count: (n: number) => void, delivered?: () => void): void {
  const queue: Array<{due: number; chunk: Buffer | null}> = []
  let head = 0
  let queued = 0
  let timer: NodeJS.Timeout | undefined
  const drain = () => {
    timer = undefined
    const now = performance.now()
    while (head < queue.length && queue[head].due <= now + 0.5) {
      const {chunk} = queue[head++]
      if (chunk === null) {
        to.end()
        continue
      }
      queued -= chunk.length
      to.write(chunk)
      delivered?.()
    }
    if (head > 1024 && head * 2 > queue.length) {
      queue.splice(0, head)
      head = 0
    }
    if (queued < MAX_QUEUED && from.isPaused() && !to.writableNeedDrain) from.resume()
    arm()
  }
  const arm = () => {
    if (timer !== undefined || head >= queue.length) return
    timer = setTimeout(drain, Math.max(0, queue[head].due - performance.now()))
  }
  const enqueue = (chunk: Buffer | null) => {
    queue.push({due: performance.now() + delayMs, chunk})
    arm()
  }
  from.on('data', (chunk: Buffer) => {
    count(chunk.length)
    queued += chunk.length
    enqueue(chunk)
    if (queued >= MAX_QUEUED) from.pause()
  })
  from.on('end', () => enqueue(null))
  to.on('drain', () => {
    if (queued < MAX_QUEUED) from.resume()
  })
}

export async function startDelayRelay(opts: DelayRelayOptions): Promise<DelayRelay> {
  const up = typeof opts.delayMs === 'number' ? opts.delayMs : opts.delayMs.up
  const down = typeof opts.delayMs === 'number' ? opts.delayMs : opts.delayMs.down
  const sockets = new Set<Socket>()
  const relay: DelayRelay = {port: 0, host: opts.listenHost ?? '127.0.0.1', bytes: {up: 0, down: 0}, connections: 0, turns: 0, close: async () => {}}
  const server = createServer({noDelay: true, allowHalfOpen: true}, (client) => {
    relay.connections++
    // The connection to the target is made at once (its SYN does not wait), but the bytes
    // either way wait their delay: the client's first bytes reach the target `up` ms later.
    const target = connect({host: opts.targetHost ?? '127.0.0.1', port: opts.targetPort, noDelay: true, allowHalfOpen: true})
    for (const s of [client, target]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {
        client.destroy()
        target.destroy()
      })
    }
    let heard = false
    delayedPipe(client, target, up, (n) => {
      relay.bytes.up += n
      if (heard) relay.turns++
      heard = false
    })
    delayedPipe(
      target,
      client,
      down,
      (n) => (relay.bytes.down += n),
      () => (heard = true),
    )
    const closeBoth = () => {
      // A side that closed entirely: the other follows once what was queued went out.
      setTimeout(
        () => {
          client.destroySoon()
          target.destroySoon()
        },
        Math.max(up, down) + 5,
      )
    }
    client.on('close', closeBoth)
    target.on('close', closeBoth)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.listenPort ?? 0, relay.host, () => resolve())
  })
  relay.port = (server.address() as AddressInfo).port
  relay.close = async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return relay
}

// As a process: for a relay inside a network namespace (`ip netns exec NS node ...`).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [listen, target, delay, host] = process.argv.slice(2)
  const [th, tp] = (target ?? '').split(/:(?=\d+$)/)
  if (!listen || !th || !tp || !delay) {
    process.stderr.write('usage: delay-relay.js LISTEN_PORT TARGET_HOST:PORT DELAY_MS [LISTEN_HOST]\n')
    process.exit(2)
  }
  const r = await startDelayRelay({listenPort: Number(listen), listenHost: host ?? '127.0.0.1', targetHost: th, targetPort: Number(tp), delayMs: Number(delay)})
  process.stdout.write(`relay ${r.host}:${r.port} -> ${th}:${tp}, ${delay} ms each way\n`)
  process.on('SIGTERM', () => void r.close().then(() => process.exit(0)))
}
