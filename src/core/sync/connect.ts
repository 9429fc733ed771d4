// Open a byte stream to the receiver for a target. A local path runs the receiver
// in-process over an in-memory stream pair (same protocol, same code as over SSH).
import path from 'node:path'
import type {Duplex} from 'node:stream'
import {handleConnection} from '../receiver/session.js'
import type {Target} from '../target/target.js'
import {duplexPair} from '../protocol/duplex-pair.js'
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
  if (target.kind === 'local') {
    const [client, server] = duplexPair()
    const served = handleConnection(server, {root: path.dirname(target.path), log: opts.log})
    return {
      stream: client,
      replicaPath: path.basename(target.path),
      close: async () => {
        client.end()
        await served
      },
    }
  }
  throw new TransportError('SSH_UNAVAILABLE', 'SSH targets are not wired up yet')
}
