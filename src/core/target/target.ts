// Replication targets: a plain local path (a mounted share; the receiver runs in-process)
// or `[user@]host[:port]:/path` over SSH.
import path from 'node:path'
import {UsageError} from '../errors.js'

export type Target =
  | {kind: 'local'; path: string}
  | {kind: 'ssh'; user?: string; host: string; port?: number; path: string}

const SSH_FORM = /^(?:([^@\s/:]+)@)?(\[[0-9a-fA-F:.]+\]|[^@\s/:[\]]+)(?::(\d+))?:(\/.*)$/

export function parseTarget(spec: string): Target {
  if (spec.length === 0) throw new UsageError('BAD_TARGET', 'the target is empty')
  if (spec.startsWith('/') || spec.startsWith('.') || !spec.includes(':')) {
    return {kind: 'local', path: path.resolve(spec)}
  }
  const m = SSH_FORM.exec(spec)
  if (!m) throw new UsageError('BAD_TARGET', `cannot parse target '${spec}'`, {hint: 'use /local/path or [user@]host[:port]:/absolute/path'})
  const [, user, rawHost, port, remotePath] = m
  const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost
  let portNum: number | undefined
  if (port !== undefined) {
    portNum = Number(port)
    if (!Number.isInteger(portNum) || portNum < 1 || portNum > 65535) throw new UsageError('BAD_TARGET', `bad SSH port ${port} in target '${spec}'`)
  }
  if (remotePath.split('/').includes('..')) throw new UsageError('BAD_TARGET', `the remote path in '${spec}' contains '..'`)
  return {kind: 'ssh', user, host, port: portNum, path: remotePath}
}

export function formatTarget(t: Target): string {
  if (t.kind === 'local') return t.path
  const host = t.host.includes(':') ? `[${t.host}]` : t.host
  return `${t.user ? `${t.user}@` : ''}${host}${t.port ? `:${t.port}` : ''}:${t.path}`
}
