// Everything decided before the first byte of an SSH connection: ~/.ssh/config resolved,
// known_hosts prepared, keys and the agent loaded, and ssh2's ConnectConfig built from them.

import {homedir} from 'node:os'
import {join} from 'node:path'
import type {CipherAlgorithm, ConnectConfig} from 'ssh2'
import {TransportError} from '../../errors.js'
import type {ConnectContext} from './connect-error.js'
import {HostVerification} from './host-verifier.js'
import {describeCredentials, identitySources, loadCredentials, makeAuthHandler} from './identities.js'
import {knownHostName} from './known-hosts.js'
import {resolveSshHost} from './ssh-config.js'
import {sameQuery, type EarlyConnection} from './early-socket.js'

export interface SshTransportOptions {
  /** Host as the user wrote it (a name from ~/.ssh/config works). */
  host: string
  user?: string
  port?: number
  /** Extra identity files, tried before the config's and the defaults. */
  identityFiles?: string[]
  /** Default: the config's UserKnownHostsFile, else ~/.ssh/known_hosts. */
  knownHostsFile?: string
  /** Trust and record an unknown host key (never a changed one). */
  acceptNewHostKey?: boolean
  /** Default true. */
  useAgent?: boolean
  /** Default: the config's IdentityAgent, else $SSH_AUTH_SOCK. */
  agentSocket?: string
  /** Default ~/.ssh/config. */
  configFile?: string
  /** Default os.homedir(): `~`, ~/.ssh/config, ~/.ssh/id_*, ~/.ssh/known_hosts. */
  homeDir?: string
  /**
   * Cipher preference, e.g. ['chacha20-poly1305@openssh.com']. Default ssh2's, which puts
   * aes128-gcm@openssh.com first: with AES-NI it measured at least as fast as chacha20 and
   * cheaper for sshd on the replica host.
   */
  ciphers?: string[]
  /** Default 20 000. */
  readyTimeoutMs?: number
  /** Default 15 000; with keepaliveCountMax 3 a dead peer is noticed in about a minute. */
  keepaliveIntervalMs?: number
  keepaliveCountMax?: number
  log?: (line: string) => void
  /** The TCP connection opened before ssh2 was loaded (early-socket.ts); its resolved host is used when opened for this login. */
  early?: EarlyConnection
  /** ssh2's own protocol trace, one line per packet (for tests and debugging). */
  debug?: (line: string) => void
  /** Default process.env: read for $SSH_AUTH_SOCK and VDREP_SSH2_INTERNALS. */
  env?: NodeJS.ProcessEnv
}

export interface LoginSettings {
  config: ConnectConfig
  /** What a failed connect needs to say what went wrong (label, host keys, keys offered). */
  context: ConnectContext
}

export async function loginSettings(opts: SshTransportOptions): Promise<LoginSettings> {
  const log = opts.log
  const env = opts.env ?? process.env
  const homeDir = opts.homeDir ?? homedir()
  const query = {host: opts.host, user: opts.user, port: opts.port, configFile: opts.configFile, homeDir: opts.homeDir}
  const cfg = opts.early && sameQuery(opts.early, query) ? opts.early.settings : await resolveSshHost({...query, homeDir})
  for (const d of cfg.ignored) log?.(`ssh config: ${d} is set for ${opts.host} but vdrep does not apply it`)
  const label = `${cfg.user}@${cfg.hostName.includes(':') ? `[${cfg.hostName}]` : cfg.hostName}:${cfg.port}`
  const knownHostsFile = opts.knownHostsFile ?? cfg.knownHostsFile ?? join(homeDir, '.ssh', 'known_hosts')
  // As OpenSSH: HostKeyAlias is the known_hosts name as it stands, without the port.
  const lookupName = cfg.hostKeyAlias !== undefined ? cfg.hostKeyAlias.toLowerCase() : knownHostName(cfg.hostName, cfg.port)
  const verification = await HostVerification.prepare({knownHostsFile, lookupName, acceptNewHostKey: opts.acceptNewHostKey, log})

  let agentSocket: string | undefined
  if (opts.useAgent !== false && cfg.identityAgent !== 'none') {
    agentSocket = opts.agentSocket ?? (cfg.identityAgent === undefined || cfg.identityAgent === 'SSH_AUTH_SOCK' ? env['SSH_AUTH_SOCK'] : cfg.identityAgent)
  }
  const creds = await loadCredentials(identitySources(opts.identityFiles ?? [], cfg.identityFiles, homeDir), agentSocket, log)
  if (!creds.agentSocket && creds.identities.length === 0) {
    throw new TransportError(
      'SSH_NO_IDENTITY',
      `no ssh key to log in to ${label} with: no agent and no usable identity file${creds.skipped.length ? ` (skipped: ${creds.skipped.join('; ')})` : ''}`,
      {
        hint: 'create a key with ssh-keygen, load one into ssh-agent, or name one with --identity',
      },
    )
  }

  const config: ConnectConfig = {
    host: cfg.hostName,
    port: cfg.port,
    username: cfg.user,
    authHandler: makeAuthHandler(cfg.user, creds, log),
    hostVerifier: verification.verify,
    readyTimeout: opts.readyTimeoutMs ?? 20_000,
    keepaliveInterval: opts.keepaliveIntervalMs ?? 15_000,
    keepaliveCountMax: opts.keepaliveCountMax ?? 3,
    algorithms: {},
    ...(opts.debug ? {debug: opts.debug} : {}),
  }
  if (verification.algorithms) config.algorithms!.serverHostKey = verification.algorithms
  if (opts.ciphers && opts.ciphers.length > 0) config.algorithms!.cipher = opts.ciphers as CipherAlgorithm[]
  // The early socket connects where this login would: used only when opened for the same query.
  if (opts.early && sameQuery(opts.early, query)) {
    const sock = opts.early.take()
    if (sock) config.sock = sock
  } else opts.early?.drop()
  return {config, context: {label, verification, knownHostsFile, lookupName, offered: describeCredentials(creds), skipped: creds.skipped}}
}
