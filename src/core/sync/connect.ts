// Open a byte stream to the receiver for a target. A local path runs the receiver in a
// worker thread (same protocol, same code as over SSH, and the other core does its half);
// an SSH target tunnels to `vdrep serve` on the replica host (ssh-connect.ts).
import path from 'node:path'
import type {Duplex} from 'node:stream'
import {MessageChannel, Worker} from 'node:worker_threads'
import {workerUrl} from '../locations.js'
import {portDuplex} from '../protocol/port-stream.js'
import type {SshSettings} from '../psf/settings.js'
import type {Target} from '../target/target.js'

export interface ReceiverConnection {
  stream: Duplex
  /** Where the replica lives, as the receiver is asked for it. */
  replicaPath: string
  close(): Promise<void>
}

export interface ConnectOptions {
  port: number
  /** SSH targets: trust and record an unknown host key (never a changed one). */
  acceptNewHostKey?: boolean
  /** SSH targets: the .psf's settings (user, port, identity files, known_hosts, serve command). */
  ssh?: SshSettings
  log?: (line: string) => void
}

export async function connectReceiver(target: Target, opts: ConnectOptions): Promise<ReceiverConnection> {
  if (target.kind === 'local') return connectLocal(target.path, opts)
  // Loaded only for an SSH target: ssh2 is ~100 ms of start-up that a local target, and every
  // command that never connects, should not pay.
  const {connectSshReceiver} = await import('./ssh-connect.js')
  const {stream, transport} = await connectSshReceiver(target, opts)
  return {
    stream,
    // The receiver resolves it under its own root; an absolute path must name a place there.
    replicaPath: target.path,
    close: async () => {
      if (!stream.destroyed) stream.end()
      await transport.close()
    },
  }
}

function connectLocal(replica: string, opts: ConnectOptions): ReceiverConnection {
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
  const stream = portDuplex(port1)
  return {
    stream,
    replicaPath: path.basename(replica),
    close: async () => {
      stream.end()
      const timer = setTimeout(() => void worker.terminate(), 30_000)
      await exited
      clearTimeout(timer)
    },
  }
}
