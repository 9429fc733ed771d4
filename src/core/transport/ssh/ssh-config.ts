// What ~/.ssh/config says about a host: HostName, User, Port, IdentityFile,
// UserKnownHostsFile, HostKeyAlias, IdentityAgent. Parsing and Host/Match evaluation are
// the `ssh-config` package's; this file applies OpenSSH's precedence (the target's own
// user and port win over the file, the first value in the file wins over later ones)
// and expands `~` and the `%` tokens OpenSSH allows in those paths.

import {readFile} from 'node:fs/promises'
import {homedir, hostname as localHostname, userInfo} from 'node:os'
import {join, resolve} from 'node:path'
import type SSHConfig from 'ssh-config'
import {UsageError} from '../../errors.js'

export interface SshHostQuery {
  /** The host as the user wrote it (may be an alias from the config file). */
  host: string
  user?: string
  port?: number
  /** Default ~/.ssh/config; a missing file means no settings. */
  configFile?: string
  /** Default os.homedir(); used for `~` and `%d`. */
  homeDir?: string
}

export interface SshHostSettings {
  /** The name the user gave. */
  alias: string
  /** Where to connect (HostName, or the alias). */
  hostName: string
  user: string
  port: number
  /** IdentityFile entries, expanded to absolute paths, in file order. */
  identityFiles: string[]
  /** The first UserKnownHostsFile, expanded. */
  knownHostsFile?: string
  /** HostKeyAlias: the name to look up in known_hosts instead of hostName. */
  hostKeyAlias?: string
  /** IdentityAgent, expanded; `none` disables the agent. */
  identityAgent?: string
  /** Directives that matter for this host but that vdrep does not apply. */
  ignored: string[]
}

/** Directives that change how OpenSSH would connect and that we do not follow. */
const NOT_APPLIED = ['proxyjump', 'proxycommand', 'localcommand', 'certificatefile', 'pkcs11provider', 'securitykeyprovider']

function localUserName(): string {
  try {
    return userInfo().username
  } catch {
    return process.env['USER'] ?? 'root'
  }
}

export interface ExpandContext {
  homeDir: string
  localUser: string
  remoteUser: string
  hostName: string
  alias: string
  port: number
}

/** Expands a leading `~` and OpenSSH's `%d %u %r %h %n %p %l %i %%` tokens. */
export function expandSshPath(raw: string, ctx: ExpandContext, directive = 'path'): string {
  let p = raw
  if (p === '~' || p.startsWith('~/')) p = ctx.homeDir + p.slice(1)
  else if (p.startsWith('~')) throw new UsageError('SSH_CONFIG_BAD', `${directive} '${raw}': ~user paths are not supported`)
  const tokens: Record<string, string> = {
    '%': '%',
    d: ctx.homeDir,
    u: ctx.localUser,
    r: ctx.remoteUser,
    h: ctx.hostName,
    n: ctx.alias,
    p: String(ctx.port),
    l: localHostname(),
    i: String(process.getuid?.() ?? ''),
  }
  p = p.replace(/%(.)/g, (whole, t: string) => {
    const v = tokens[t]
    if (v === undefined) throw new UsageError('SSH_CONFIG_BAD', `${directive} '${raw}': unknown token ${whole}`)
    return v
  })
  return resolve(p)
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}

function list(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v]
}

async function loadConfig(file: string): Promise<SSHConfig | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new UsageError('SSH_CONFIG_UNREADABLE', `cannot read ssh config ${file}: ${(err as Error).message}`, {cause: err})
  }
  try {
    // The parser is loaded only when there is a file to parse: the login's TCP connection
    // waits for this reading (early-socket.ts), and a host without ~/.ssh/config needs none.
    const {default: parser} = await import('ssh-config')
    return parser.parse(text)
  } catch (err) {
    throw new UsageError('SSH_CONFIG_BAD', `cannot parse ssh config ${file}: ${(err as Error).message}`, {cause: err})
  }
}

/** Resolves the settings for one host from the config file and the target. */
export async function resolveSshHost(q: SshHostQuery): Promise<SshHostSettings> {
  const homeDir = q.homeDir ?? homedir()
  const configFile = q.configFile ?? join(homeDir, '.ssh', 'config')
  const config = await loadConfig(configFile)
  // Match exec is not run: reading settings must not start programs.
  const c = config?.compute({Host: q.host, User: q.user}, {ignoreCase: true, matchExec: false}) ?? {}

  const hostName = first(c['hostname']) ?? q.host
  const localUser = localUserName()
  const user = q.user ?? first(c['user']) ?? localUser
  let port = q.port
  const cfgPort = first(c['port'])
  if (port === undefined && cfgPort !== undefined) {
    port = Number(cfgPort)
    if (!/^\d+$/.test(cfgPort) || port < 1 || port > 65535) {
      throw new UsageError('SSH_CONFIG_BAD', `bad Port '${cfgPort}' for host ${q.host} in ${configFile}`)
    }
  }
  port ??= 22
  const ctx: ExpandContext = {homeDir, localUser, remoteUser: user, hostName, alias: q.host, port}

  const identityFiles = list(c['identityfile']).map((f) => expandSshPath(f, ctx, 'IdentityFile'))
  const kh = first(c['userknownhostsfile'])
  const agent = first(c['identityagent'])
  const out: SshHostSettings = {alias: q.host, hostName, user, port, identityFiles, ignored: NOT_APPLIED.filter((d) => c[d] !== undefined)}
  if (kh !== undefined && kh !== 'none') out.knownHostsFile = expandSshPath(kh, ctx, 'UserKnownHostsFile')
  const alias = first(c['hostkeyalias'])
  if (alias !== undefined) out.hostKeyAlias = alias
  if (agent !== undefined) {
    out.identityAgent = agent === 'none' || agent === 'SSH_AUTH_SOCK' ? agent : expandSshPath(agent, ctx, 'IdentityAgent')
  }
  return out
}
