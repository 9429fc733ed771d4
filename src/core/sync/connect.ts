// Open a byte stream to the receiver for a target. A local path runs the receiver in a
// worker thread (same protocol, same code as over SSH, and the other core does its half).
import path from 'node:path'
import type {Duplex} from 'node:stream'
import {MessageChannel, Worker} from 'node:worker_threads'
import {portDuplex} from '../protocol/port-stream.js'
import type {Target} from '../target/target.js'
import {TransportError} from '../errors.js'

export interface ReceiverConnection {
  stream: Duplex
  /** Where the replica lives, as the receiver is asked for it. */
  replicaPath: string
  close(): Promise<void>
}

export interface ConnectOptions {
  port: number
  log?: (line: string) => void
}

export async function connectReceiver(target: Target, opts: ConnectOptions): Promise<ReceiverConnection> {
  if (target.kind === 'local') return connectLocal(target.path, opts)
  throw new TransportError('SSH_UNAVAILABLE', 'SSH targets are not wired up yet')
}

function connectLocal(replica: string, opts: ConnectOptions): ReceiverConnection {
  const {port1, port2} = new MessageChannel()
  const worker = new Worker(new URL('../receiver/local-worker.js', import.meta.url), {
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
