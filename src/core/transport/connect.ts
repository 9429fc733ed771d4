// Open the carrier (carrier.ts) to the receiver for a target. A local path runs the receiver
// in this process, over the same framed protocol and the same code as over SSH: on this
// thread through an in-memory duplex pair (or, with VDREP_LOCAL_RECEIVER=worker, in a worker
// thread over a MessagePort). An SSH target tunnels to `vdrep serve` on the replica host
// (ssh-connect.ts).
//
// Why not the worker: the reads and checksums run in libuv's thread pool (native readHashRuns /
// mapHashRuns) on either carrier, so the worker takes little off this thread, and it costs: its
// start (~0.1 s wall, ~0.2 CPU-s, the receiver's code loaded again), its own V8 heap, and a
// second copy of what travels (the port's staging batches and its 16 MiB window). Measured on a
// 1 GiB disk with a 1%-changed seed: 0.83 s and 1.26 CPU-s with the worker, 0.73 s and 1.05
// CPU-s on this thread. On a 64 GiB disk (issue 21) the seed sync ran as fast on this thread
// (3.1-3.9 s against 3.6-3.7 s), and the peak resident memory fell by 30-50 MiB for a full sync
// and by ~100 MiB for a push (243 -> 142 MiB: the worker held the push's bundle in transferred
// buffers), which is what kept those commands above the 160 MiB budget.
import path from 'node:path'
import {MessageChannel, Worker} from 'node:worker_threads'
import {workerUrl} from '../locations.js'
import {portDuplex} from './port-stream.js'
import {duplexPair} from './duplex-pair.js'
import {streamCarrier, type Carrier} from './carrier.js'
import type {SshSettings} from '../psf/settings.js'
import type {Target} from '../target/target.js'
import type {LogLevel} from '../sync/progress.js'
import {sessionLine} from '../receiver/session-log.js'
import {trace} from '../util/trace.js'
import {openEarly, sshHostQuery} from './ssh/early-socket.js'

export interface ConnectOptions {
  port: number
  /** SSH targets: trust and record an unknown host key (never a changed one). */
  acceptNewHostKey?: boolean
  /** SSH targets: the .psf's settings (user, port, identity files, known_hosts, serve command). */
  ssh?: SshSettings
  /** `notice` lines are for the user even without --verbose (a receiver without keepalives). */
  log?: (line: string, level?: LogLevel) => void
  /**
   * SSH targets (--timeout): the login, and every wait for the receiver, fail with PEER_TIMEOUT
   * or SSH_TIMEOUT after this long without a byte (default DEFAULT_TIMEOUT_MS). Local targets
   * have no network to wait for: their receiver runs in this process.
   */
  timeoutMs?: number
}

/** How long a local receiver may take to finish after the client closed, before it is abandoned. */
const LOCAL_CLOSE_TIMEOUT_MS = 30_000

/**
 * Where a local target's receiver runs: this thread, unless VDREP_LOCAL_RECEIVER=worker (tests
 * use it to cover both carriers).
 */
export function localReceiverCarrier(): 'worker' | 'inline' {
  return process.env.VDREP_LOCAL_RECEIVER === 'worker' ? 'worker' : 'inline'
}

export async function connectReceiver(target: Target, opts: ConnectOptions): Promise<Carrier> {
  if (target.kind === 'local') return localReceiverCarrier() === 'worker' ? connectWorker(target.path, opts) : connectInline(target.path, opts)
  // Loaded only for an SSH target: ssh2 is ~100 ms of start-up that a local target, and every
  // command that never connects, should not pay. ssh2's TCP connection opens first and sshd
  // starts its session while ssh2 loads (early-socket.ts, imported above: a dynamic import of
  // it cost ~10 ms before the connect on a loaded host; ~/.ssh/config's parser loads only
  // when there is such a file).
  const early = opts.ssh?.carrier === 'openssh' ? undefined : await openEarly(sshHostQuery(target, opts.ssh ?? {}))
  let connectSshReceiver: typeof import('./ssh-connect.js').connectSshReceiver
  try {
    ;({connectSshReceiver} = await import('./ssh-connect.js'))
  } catch (err) {
    early?.drop()
    throw err
  }
  trace('ssh: module loaded')
  return connectSshReceiver(target, {...opts, early})
}

async function connectInline(replica: string, opts: ConnectOptions): Promise<Carrier> {
  opts.log?.(`local receiver for ${replica}: on this thread`)
  const [client, server] = duplexPair()
  const {handleConnection} = await import('../receiver/session.js')
  // handleConnection answers every failure with an ERROR frame and never rejects; the catch
  // is for the impossible case, so that it cannot become an unhandled rejection.
  const served = handleConnection(server, {
    root: path.dirname(replica),
    lockAcrossProcesses: true,
    sameThreadClient: true,
    log: (text, subject) => opts.log?.(sessionLine(text, subject)),
  })
    .catch(() => {})
    .finally(() => {
      server.end()
      server.hangUp()
    })
  return streamCarrier(client, path.basename(replica), async () => {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([served, new Promise<void>((r) => (timer = setTimeout(r, LOCAL_CLOSE_TIMEOUT_MS).unref()))])
    clearTimeout(timer)
  })
}

function connectWorker(replica: string, opts: ConnectOptions): Carrier {
  opts.log?.(`local receiver for ${replica}: in a worker thread`)
  const {port1, port2} = new MessageChannel()
  const worker = new Worker(workerUrl('local-worker'), {
    workerData: {root: path.dirname(replica), port: port2},
    transferList: [port2],
  })
  worker.on('message', (m: {log?: string}) => {
    if (m.log) opts.log?.(m.log)
  })
  const exited = new Promise<void>((resolve) => {
    worker.once('exit', () => resolve())
    worker.once('error', () => resolve())
  })
  return streamCarrier(portDuplex(port1), path.basename(replica), async () => {
    const timer = setTimeout(() => void worker.terminate(), LOCAL_CLOSE_TIMEOUT_MS)
    await exited
    clearTimeout(timer)
  })
}
