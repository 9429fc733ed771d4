// SSH targets as users write them: `[user@]host[:port]:/path`, where host may be a name,
// an IPv4 address, or an IPv6 literal in brackets (`root@[fe80::1]:2222:/srv/a.img`).

import {isIPv6} from 'node:net'
import {UsageError} from '../../errors.js'

export interface SshTarget {
  user?: string
  /** Host name or address, without brackets. */
  host: string
  port?: number
  /** Absolute path on the replica host. */
  path: string
}

const TARGET_RE = /^(?:([^@\s:/[\]]+)@)?(\[[^\]\s/]*\]|[^@\s:/[\]]+)(?::(\d+))?:(.*)$/s
const HOST_NAME_RE = /^[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$/

/**
 * Whether a target string names a remote host (`host:` before any `/`), as scp decides;
 * anything else is a local path.
 */
export function isSshTarget(text: string): boolean {
  const colon = text.indexOf(':')
  if (colon <= 0) return false
  const slash = text.indexOf('/')
  if (text.startsWith('[')) return slash === -1 || text.indexOf(']') < slash
  return slash === -1 || colon < slash
}

function bad(text: string, why: string): UsageError {
  return new UsageError('BAD_TARGET', `bad ssh target '${text}': ${why}`, {
    hint: 'write the target as [user@]host[:port]:/path, e.g. root@replica:/srv/replicas/vm1.img or root@[fd00::5]:2222:/srv/vm1.img',
  })
}

/** Parses `[user@]host[:port]:/path`; throws UsageError('BAD_TARGET') naming the problem. */
export function parseSshTarget(text: string): SshTarget {
  if (text.includes('\0')) throw bad(text.replace(/\0/g, '\\0'), 'it contains a NUL byte')
  const m = TARGET_RE.exec(text)
  if (!m) {
    if (!text.includes(':')) throw bad(text, "no ':' after the host")
    if (/^[^@]*@@|^@/.test(text)) throw bad(text, 'empty user name')
    throw bad(text, 'it does not read as [user@]host[:port]:/path')
  }
  const [, user, rawHost, rawPort, path] = m as unknown as [string, string | undefined, string, string | undefined, string]
  if (user !== undefined && user.startsWith('-')) throw bad(text, `user name '${user}' starts with '-'`)
  let host = rawHost
  if (host.startsWith('[')) {
    host = host.slice(1, -1)
    const addr = host.split('%')[0]!
    if (!isIPv6(addr)) throw bad(text, `'${host}' in brackets is not an IPv6 address`)
  } else if (!HOST_NAME_RE.test(host)) {
    throw bad(text, `'${host}' is not a host name or address`)
  } else if (isIPv6(host)) {
    throw bad(text, 'an IPv6 address must be written in brackets')
  }
  let port: number | undefined
  if (rawPort !== undefined) {
    port = Number(rawPort)
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(text, `port ${rawPort} is not between 1 and 65535`)
  }
  if (path === '') throw bad(text, 'no path after the host')
  if (!path.startsWith('/')) throw bad(text, `the path '${path}' is not absolute`)
  return user === undefined ? {host, port, path} : {user, host, port, path}
}

/** The target as text again, with brackets around IPv6 hosts. */
export function formatSshTarget(t: SshTarget): string {
  const host = t.host.includes(':') ? `[${t.host}]` : t.host
  return `${t.user === undefined ? '' : `${t.user}@`}${host}${t.port === undefined ? '' : `:${t.port}`}:${t.path}`
}
