// The command line of the system's `ssh` for one tunnel or one remote command. Only what the
// host-key and cron rules need is forced on the command line (which wins over ssh_config);
// everything else (ProxyJump, certificates, ControlMaster, GSSAPI, FIDO keys, ciphers) comes
// from the user's ssh_config, as it would for a plain `ssh`.

export interface OpenSshOptions {
  /** Host as the user wrote it (an ssh_config Host alias works). */
  host: string
  user?: string
  port?: number
  /** Extra identity files (-i), tried with those of the config and the agent. */
  identityFiles?: string[]
  /** The only known_hosts file used when set (the disk's settings); else the config's. */
  knownHostsFile?: string
  /** Trust and record an unknown host key (never a changed one): accept-new instead of yes. */
  acceptNewHostKey?: boolean
  /** An ssh_config file to read instead of ~/.ssh/config (-F). */
  configFile?: string
  /** Seconds between keepalives (ServerAliveInterval); three missed ones end the connection. */
  keepaliveSeconds?: number
}

/** Default keepalive, as the ssh2 carrier's: a dead peer is noticed in about a minute. */
export const OPENSSH_KEEPALIVE_SECONDS = 15

/** The options both uses share: strict host keys, no prompts, no forwarding of anything. */
function commonArgs(o: OpenSshOptions): string[] {
  const args: string[] = []
  if (o.configFile !== undefined) args.push('-F', o.configFile)
  args.push(
    // No passphrase or host-key prompt under cron: a question is a failure.
    '-o',
    'BatchMode=yes',
    // Never trust a new key silently; accept-new (record an unknown key, refuse a changed
    // one) only when the user asked for it with --accept-new-host-key.
    '-o',
    `StrictHostKeyChecking=${o.acceptNewHostKey ? 'accept-new' : 'yes'}`,
    // known_hosts changes only by the rule above, not by the server's key rotation hints.
    '-o',
    'UpdateHostKeys=no',
    '-o',
    'ForwardAgent=no',
    '-o',
    'ForwardX11=no',
    '-o',
    'ClearAllForwardings=yes',
    '-o',
    `ServerAliveInterval=${o.keepaliveSeconds ?? OPENSSH_KEEPALIVE_SECONDS}`,
    '-o',
    'ServerAliveCountMax=3',
    // As the ssh2 carrier's ready timeout: an unreachable host fails within 20 s.
    '-o',
    'ConnectTimeout=20',
  )
  if (o.knownHostsFile !== undefined) {
    // The disk's known_hosts is the one record of the replica host's key, as with ssh2.
    args.push('-o', `UserKnownHostsFile=${quoteOption(o.knownHostsFile)}`, '-o', 'GlobalKnownHostsFile=none')
  }
  for (const f of o.identityFiles ?? []) args.push('-i', f)
  if (o.user !== undefined) args.push('-l', o.user)
  if (o.port !== undefined) args.push('-p', String(o.port))
  return args
}

/**
 * `ssh -W 127.0.0.1:PORT`: the process' stdin and stdout are one direct-tcpip channel.
 * -vv for the two lines that say the channel opened (see openssh-log.ts): without them a
 * refused channel and a slow one look alike until the first byte.
 */
export function tunnelArgs(o: OpenSshOptions, port: number): string[] {
  return ['-vv', ...commonArgs(o), '-T', '-W', `127.0.0.1:${port}`, '--', o.host]
}

/** `ssh HOST -- COMMAND`, no TTY, stdin closed: for starting the receiver. */
export function execArgs(o: OpenSshOptions, command: string): string[] {
  return [...commonArgs(o), '-T', '-n', '--', o.host, command]
}

/** ssh_config values with spaces are quoted; a path holding a quote cannot be passed. */
function quoteOption(value: string): string {
  return /[\s"]/.test(value) ? `"${value}"` : value
}
