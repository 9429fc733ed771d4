// Replication targets: a plain local path (a mounted share; the receiver runs in-process)
// or `[user@]host[:port]:/path` over SSH. The SSH form is read by the transport's own
// parser (stricter: host names, IPv6 in brackets, no user starting with '-'), so a target
// means the same thing to `init` and to the connection.
import path from 'node:path'
import {UsageError} from '../errors.js'
import {parseSshTarget} from '../transport/ssh/ssh-target.js'

export type Target = {kind: 'local'; path: string} | {kind: 'ssh'; user?: string; host: string; port?: number; path: string}

/** `host:PORT:` or `user@host:PORT:` or `[v6]:PORT:` — only to name a bad port plainly. */
const PORT_PART = /^(?:[^@\s/:[\]]+@)?(?:\[[^\]]*\]|[^@\s/:[\]]+):(\d+):/

export function parseTarget(spec: string): Target {
  if (spec.length === 0) throw new UsageError('BAD_TARGET', 'the target is empty')
  if (spec.startsWith('/') || spec.startsWith('.') || !spec.includes(':')) {
    return {kind: 'local', path: path.resolve(spec)}
  }
  const port = PORT_PART.exec(spec)?.[1]
  if (port !== undefined) {
    const n = Number(port)
    if (!Number.isInteger(n) || n < 1 || n > 65535)
      throw new UsageError('BAD_TARGET', `bad SSH port ${port} in target '${spec}'`, {hint: 'the port is between 1 and 65535'})
  }
  const t = parseSshTarget(spec)
  // The receiver refuses these too; saying so at init is kinder than at the first sync.
  if (t.path.split('/').includes('..'))
    throw new UsageError('BAD_TARGET', `the remote path in '${spec}' contains '..'`, {hint: 'give the replica path without ..'})
  return {kind: 'ssh', user: t.user, host: t.host, port: t.port, path: t.path}
}

export function formatTarget(t: Target): string {
  if (t.kind === 'local') return t.path
  const host = t.host.includes(':') ? `[${t.host}]` : t.host
  return `${t.user ? `${t.user}@` : ''}${host}${t.port ? `:${t.port}` : ''}:${t.path}`
}
