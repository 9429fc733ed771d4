// The one interface the sync engine uses to reach the replica host. The SSH transport
// (ssh/ssh-transport.ts) implements it over direct-tcpip channels; a local carrier can
// implement it in-process.

import type {Duplex} from 'node:stream'

export interface ExecResult {
  /** The exit status, or null when the command died of a signal. */
  code: number | null
  stdout: string
  stderr: string
}

export interface Transport {
  /** A byte stream to 127.0.0.1:port on the replica host. */
  openStream(port: number): Promise<Duplex>
  /** Run a command on the replica host (used to auto-start `vdrep serve`). */
  exec(command: string): Promise<ExecResult>
  close(): Promise<void>
}
