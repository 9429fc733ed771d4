// The connection to the replica host of a push: started as early as it can be (the SSH login is
// the largest fixed cost of a push) and dropped quietly when the push falls back or fails first.
import {timeoutMsOf, withCarrier} from '../psf/settings.js'
import type {PsfHeader} from '../psf/header.js'
import {parseTarget} from '../target/target.js'
import type {Carrier} from '../transport/carrier.js'
import {connectReceiver} from '../transport/connect.js'
import type {PushOptions} from './push.js'

export interface Connecting {
  conn: Promise<Carrier>
  startedMs: number
}

export function startConnecting(h: PsfHeader, opts: PushOptions): Connecting {
  const conn = connectReceiver(parseTarget(h.settings.target), {
    port: h.settings.deltaPort,
    log: opts.log,
    acceptNewHostKey: opts.acceptNewHostKey,
    timeoutMs: timeoutMsOf(opts.timeoutMs, h.settings),
    ssh: withCarrier(h.settings.ssh, opts.sshCarrier),
  })
  conn.catch(() => {}) // awaited by pushDelta, or dropped when the push falls back before it
  return {conn, startedMs: performance.now()}
}

export async function closeQuietly(conn: Carrier): Promise<void> {
  conn.abort()
  await conn.close().catch(() => {})
}

/** Close a connection that was started but is not used (the push falls back or failed first). */
export async function dropConnection(c: Connecting): Promise<void> {
  const conn = await c.conn.catch(() => undefined)
  if (conn) await closeQuietly(conn)
}
