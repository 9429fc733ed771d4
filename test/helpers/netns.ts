// A WAN for tests and the bench: a network namespace for the replica host joined to this one by
// a veth pair whose two ends are rate-limited with `tc ... tbf` (netem is not available here;
// delay comes from a user-space relay, see WanOptions.relay). Needs root (CAP_NET_ADMIN) and
// iproute2; netnsUnavailable() says why not, so a test can skip with a clear message.
//
// Layout: this process's namespace is the client side (so an in-process relay can sit on the
// path), `ns` is the replica side: sshd and `vdrep serve` run inside it through `ip netns exec`,
// and its loopback is its own, as a replica host's is.
import {execFileSync, spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {randomInt} from 'node:crypto'
import {VDREP_BIN} from './cli.js'

export interface WanOptions {
  /** tbf rate, as tc spells it: '1gbit', '100mbit'. Applied on both ends (each end's egress). */
  rate: string
  /**
   * The h-wan engineer's delay relay: given the replica's host:port as the client would reach it,
   * a local port that forwards there with added delay. When given, clients connect through it
   * (Wan.reach). Left out, the link has only the rate's queueing delay.
   */
  relay?: (host: string, port: number) => Promise<{port: number; close(): Promise<void> | void}>
}

export interface Wan {
  /** The replica side's namespace name (run things in it with `ip netns exec`). */
  ns: string
  clientIp: string
  replicaIp: string
  rate: string
  /** argv prefix that runs a command inside the replica namespace. */
  inNs(argv: string[]): string[]
  /** Where a client connects to reach replicaIp:port: through the relay when there is one. */
  reach(port: number): Promise<{host: string; port: number}>
  /** Change the rate on both ends. */
  setRate(rate: string): void
  close(): Promise<void>
}

function ip(args: string[]): void {
  execFileSync('ip', args, {stdio: ['ignore', 'ignore', 'pipe']})
}

/** Why a WAN cannot be made here, or undefined when it can (tries a namespace and a tbf qdisc). */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  for (const tool of ['ip', 'tc']) if (spawnSync('bash', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} (iproute2) is not installed`
  const ns = `vdprobe${process.pid % 100000}`
  const r = spawnSync('ip', ['netns', 'add', ns], {encoding: 'utf8'})
  if (r.status !== 0) return `ip netns add failed: ${r.stderr.trim()}`
  const t = spawnSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', '1gbit', 'burst', '512kb', 'latency', '50ms'], {
    encoding: 'utf8',
  })
  spawnSync('ip', ['netns', 'del', ns])
  if (t.status !== 0) return `tc tbf is not available: ${t.stderr.trim()}`
  return undefined
}

/** tbf's bucket: 4 ms of the rate (at least 64 KiB), so a 1 Gbit/s link is not cut by the timer tick. */
function burstFor(rate: string): string {
  const m = /^(\d+(?:\.\d+)?)(k|m|g)?bit$/i.exec(rate)
  if (!m) throw new Error(`rate '${rate}' is not <n>kbit|mbit|gbit`)
  const bits = Number(m[1]) * {k: 1e3, m: 1e6, g: 1e9, '': 1}[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'g' | '']
  return `${Math.max(64 * 1024, Math.round(bits / 8 / 250))}b`
}

function shape(dev: string, rate: string, inNs?: string): void {
  const tc = ['tc', 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', burstFor(rate), 'latency', '100ms']
  execFileSync(inNs ? 'ip' : tc[0], inNs ? ['netns', 'exec', inNs, ...tc] : tc.slice(1), {stdio: ['ignore', 'ignore', 'pipe']})
}

export async function createWan(opts: WanOptions): Promise<Wan> {
  // Unique per process and attempt: several engineers' tests (and npm test's two shards) may
  // build WANs at once. The pid whole (base 36) and a fixed-width random suffix: two processes
  // never make the same tag (pid % 10000 then 0..99 did: 123+45 and 1234+5).
  const tag = `${process.pid.toString(36)}${randomInt(1296).toString(36).padStart(2, '0')}`
  const ns = `vdwan${tag}`
  const here = `vdw${tag}a`
  const there = `vdw${tag}b`
  const net = `10.${200 + randomInt(50)}.${randomInt(250)}`
  const clientIp = `${net}.1`
  const replicaIp = `${net}.2`
  let closed = false
  const cleanup = () => {
    if (closed) return
    closed = true
    spawnSync('ip', ['link', 'del', here], {stdio: 'ignore'}) // removes both ends
    spawnSync('ip', ['netns', 'del', ns], {stdio: 'ignore'})
  }
  // A killed test or bench must not leave namespaces behind: synchronous, on every way out.
  process.once('exit', cleanup)
  try {
    ip(['netns', 'add', ns])
    ip(['link', 'add', here, 'type', 'veth', 'peer', 'name', there])
    ip(['link', 'set', there, 'netns', ns])
    ip(['addr', 'add', `${clientIp}/24`, 'dev', here])
    ip(['link', 'set', here, 'up'])
    ip(['netns', 'exec', ns, 'ip', 'addr', 'add', `${replicaIp}/24`, 'dev', there])
    ip(['netns', 'exec', ns, 'ip', 'link', 'set', there, 'up'])
    ip(['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up'])
    shape(here, opts.rate)
    shape(there, opts.rate, ns)
  } catch (err) {
    cleanup()
    throw new Error(`could not build the WAN: ${(err as {stderr?: Buffer}).stderr?.toString().trim() || (err as Error).message}`)
  }
  const relays: Array<{close(): Promise<void> | void}> = []
  const wan: Wan = {
    ns,
    clientIp,
    replicaIp,
    rate: opts.rate,
    inNs: (argv) => ['ip', 'netns', 'exec', ns, ...argv],
    async reach(port) {
      if (!opts.relay) return {host: replicaIp, port}
      const r = await opts.relay(replicaIp, port)
      relays.push(r)
      return {host: '127.0.0.1', port: r.port}
    },
    setRate(rate) {
      shape(here, rate)
      shape(there, rate, ns)
      wan.rate = rate
    },
    async close() {
      for (const r of relays) await r.close()
      cleanup()
      process.removeListener('exit', cleanup)
    },
  }
  return wan
}

/** `vdrep serve` inside the replica namespace (its own loopback), once it listens. */
export async function startServeIn(wan: Wan, root: string, ports: [number, number]): Promise<ChildProcess> {
  const argv = wan.inNs([process.execPath, VDREP_BIN, 'serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])])
  const child = spawn(argv[0], argv.slice(1), {stdio: ['ignore', 'ignore', 'pipe']})
  let err = ''
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const end = Date.now() + 15_000
  while (!/listening on/.test(err)) {
    if (child.exitCode !== null || Date.now() > end) {
      child.kill('SIGKILL')
      throw new Error(`vdrep serve did not start in the namespace: ${err}`)
    }
    await new Promise((r) => setTimeout(r, 25))
  }
  return child
}
