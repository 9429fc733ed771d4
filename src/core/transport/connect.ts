// Open the carrier (carrier.ts) to the receiver for a target. A local path runs the receiver
// in this process, over the same framed protocol and the same code as over SSH: on this
// thread through an in-memory duplex pair, or, for large disks, in a worker thread over a
// MessagePort so another core does its half of the hashing. An SSH target tunnels to
// `vdrep serve` on the replica host (ssh-connect.ts).
//
// Why not always the worker: with XXH3 checksums a GiB of blocks hashes in ~0.13 s, while
// starting the worker costs ~0.1 s of wall time and ~0.2 s of CPU (it loads the receiver's
// code again). Measured on a 1 GiB disk with a 1%-changed seed (interleaved, medians of 7):
// 0.83 s wall and 1.26 CPU-s with the worker, 0.73 s and 1.05 CPU-s on this thread; the
// reads still run on libuv's threads either way. From WORKER_MIN_DISK up, the worker's start
// is noise next to the hashing it takes off this thread.
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

export interface ConnectOptions {
  port: number
  /** SSH targets: trust and record an unknown host key (never a changed one). */
  acceptNewHostKey?: boolean
  /** SSH targets: the .psf's settings (user, port, identity files, known_hosts, serve command). */
  ssh?: SshSettings
  /** `notice` lines are for the user even without --verbose (a receiver without keepalives). */
  log?: (line: string, level?: LogLevel) => void
  /** Local targets: the disk's size, which decides between this thread and a worker. */
  diskSize?: number
  /**
   * SSH targets (--timeout): the login, and every wait for the receiver, fail with PEER_TIMEOUT
   * or SSH_TIMEOUT after this long without a byte (default DEFAULT_TIMEOUT_MS). Local targets
   * have no network to wait for: their receiver runs in this process.
   */
  timeoutMs?: number
}

/** Local targets of at least this many bytes run their receiver in a worker thread. */
export const WORKER_MIN_DISK = 16 * 2 ** 30
/** How long a local receiver may take to finish after the client closed, before it is abandoned. */
const LOCAL_CLOSE_TIMEOUT_MS = 30_000

/**
 * Where a local target's receiver runs. VDREP_LOCAL_RECEIVER=worker|inline overrides the
 * size rule (tests use it to cover both carriers).
 */
export function localReceiverCarrier(diskSize: number | undefined): 'worker' | 'inline' {
  const forced = process.env.VDREP_LOCAL_RECEIVER
  if (forced === 'worker' || forced === 'inline') return forced
  return (diskSize ?? 0) >= WORKER_MIN_DISK ? 'worker' : 'inline'
}

export async function connectReceiver(target: Target, opts: ConnectOptions): Promise<Carrier> {
  if (target.kind === 'local') return localReceiverCarrier(opts.diskSize) === 'worker' ? connectWorker(target.path, opts) : connectInline(target.path, opts)
  // Loaded only for an SSH target: ssh2 is ~100 ms of start-up that a local target, and every
  // command that never connects, should not pay.
  const {connectSshReceiver} = await import('./ssh-connect.js')
  return connectSshReceiver(target, opts)
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
