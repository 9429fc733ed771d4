// Reach the receiver on a replica host over SSH: log in (settings from the .psf and
// ~/.ssh/config) with the carrier the settings choose (ssh2 in this process, or the system's
// `ssh`, openssh/), open a direct-tcpip tunnel to 127.0.0.1:PORT there, and when nothing
// listens, start the receiver with the configured remote command over SSH exec and retry
// the tunnel for up to ~10 s. The receiver's root comes from its own host's configuration;
// the client sends only the replica path (in HELLO), which the receiver resolves under it.
import {TransportError, VdrepError} from '../errors.js'
import type {SshSettings} from '../psf/settings.js'
import type {Target} from '../target/target.js'
import type {LogLevel} from '../sync/progress.js'
import {connectSsh, type ExecResult} from './ssh/ssh-transport.js'
import {OpenSshTransport} from './openssh/openssh-transport.js'
import type {Carrier} from './carrier.js'
import type {Duplex} from 'node:stream'
import {DEFAULT_TIMEOUT_MS} from './peer-watchdog.js'
import {sshCarrier} from './ssh-carrier.js'
import {sshHostQuery, type EarlyConnection} from './ssh/early-socket.js'

/** Started over SSH when nothing listens; reads its root and ports from the replica host's config. */
export const DEFAULT_SERVE_COMMAND = 'vdrep serve --daemon'
/** How long the tunnel is retried after the receiver was started. */
export const AUTO_START_WAIT_MS = 10_000

export interface SshReceiverOptions {
  port: number
  ssh?: SshSettings
  acceptNewHostKey?: boolean
  log?: (line: string, level?: LogLevel) => void
  /** --timeout: login, the serve command, and every wait for the receiver (ssh-carrier.ts). */
  timeoutMs?: number
  /** ssh2: the TCP connection opened while this module loaded (ssh/early-socket.ts). */
  early?: EarlyConnection
}

/** ssh2's keepalive for a --timeout: three missed answers within it mean the connection is dead. */
export function sshKeepalive(timeoutMs: number): {keepaliveIntervalMs: number; keepaliveCountMax: number} {
  return {keepaliveIntervalMs: Math.max(1_000, Math.min(15_000, Math.floor(timeoutMs / 4))), keepaliveCountMax: 3}
}

type SshTarget = Extract<Target, {kind: 'ssh'}>

/** What both carriers offer (ssh/ssh-transport.ts, openssh/openssh-transport.ts). */
export interface Tunnels {
  readonly label: string
  openStream(port: number): Promise<Duplex>
  exec(command: string): Promise<ExecResult>
  close(): Promise<void>
}

export {sshConfigFile} from './ssh/early-socket.js'

export async function connectSshReceiver(target: SshTarget, opts: SshReceiverOptions): Promise<Carrier> {
  const ssh = opts.ssh ?? {}
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const login = {
    ...sshHostQuery(target, ssh),
    identityFiles: ssh.identityFiles,
    knownHostsFile: ssh.knownHostsFile,
    acceptNewHostKey: opts.acceptNewHostKey,
    log: opts.log,
  }
  if (ssh.carrier === 'openssh') opts.early?.drop()
  // OpenSSH logs in when the tunnel opens (below; its own ServerAlive and open timeout); ssh2 here.
  const transport: Tunnels =
    ssh.carrier === 'openssh'
      ? new OpenSshTransport({...login, keepaliveSeconds: sshKeepalive(timeoutMs).keepaliveIntervalMs / 1000})
      : await connectSsh({...login, early: opts.early, readyTimeoutMs: timeoutMs, ...sshKeepalive(timeoutMs)})
  try {
    const stream = await openOrStart(transport, opts.port, ssh.serveCommand ?? DEFAULT_SERVE_COMMAND, opts.log, timeoutMs)
    // The receiver resolves the path under its own root; an absolute path must name a place there.
    const carrierOn = (port: number, tunnel: Duplex, release: () => Promise<void>) =>
      sshCarrier({
        stream: tunnel,
        replicaPath: target.path,
        reopen: () => transport.openStream(port),
        release,
        timeoutMs,
        label: `${transport.label} (port ${port})`,
        log: opts.log,
      })
    // A sibling is one more channel on this login; its close ends the channel, not the login.
    const sibling = async (port: number) => carrierOn(port, await transport.openStream(port), async () => {})
    return {...carrierOn(opts.port, stream, () => transport.close()), sibling, siblingLogsIn: ssh.carrier === 'openssh'}
  } catch (err) {
    await transport.close().catch(() => {})
    throw err
  }
}

function refused(err: unknown): boolean {
  return err instanceof VdrepError && err.code === 'TUNNEL_REFUSED'
}

/** sshd said no to the tunnel itself (not "nothing listens"): say which settings decide that. */
function explainTunnelFailure(err: unknown, port: number): unknown {
  if (!(err instanceof VdrepError) || err.code !== 'TUNNEL_FAILED') return err
  return new TransportError('TUNNEL_FAILED', err.message, {
    cause: err,
    hint: `the replica host's sshd refused a tunnel to 127.0.0.1:${port}: check AllowTcpForwarding/PermitOpen in its sshd_config, and that a restricted key has port-forwarding and permitopen="127.0.0.1:${port}" in authorized_keys`,
  })
}

export async function openOrStart(
  transport: Tunnels,
  port: number,
  command: string,
  log?: (line: string) => void,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<Duplex> {
  try {
    return await transport.openStream(port)
  } catch (err) {
    if (!refused(err)) throw explainTunnelFailure(err, port)
  }
  log?.(`nothing listens on 127.0.0.1:${port} on ${transport.label}; starting the receiver with: ${command}`)
  let started: {code: number | null; stdout: string; stderr: string} | undefined
  let execError: VdrepError | undefined
  try {
    started = await withTimeout(
      transport.exec(command),
      timeoutMs,
      () => new TransportError('SSH_EXEC', `'${command}' on ${transport.label} did not return within ${Math.round(timeoutMs / 1000)} s`),
    )
    const said = `${started.stderr}\n${started.stdout}`.trim().replace(/\s*\n\s*/g, ' | ')
    log?.(`'${command}' exited ${started.code ?? 'by a signal'}${said ? `: ${said}` : ''}`)
  } catch (err) {
    if (!(err instanceof VdrepError) || err.code === 'SSH_CONNECTION_LOST') throw err
    execError = err
    log?.(`cannot run '${command}': ${err.message}`)
  }
  // Even when the command failed, a receiver started at the same time by another client may
  // be coming up: retry the tunnel, with backoff, then explain.
  const failed = execError !== undefined || started?.code !== 0
  const deadline = Date.now() + (failed ? 1_000 : AUTO_START_WAIT_MS)
  let delay = 50
  let last: unknown
  for (let attempt = 1; ; attempt++) {
    try {
      const stream = await transport.openStream(port)
      log?.(`the receiver answers on 127.0.0.1:${port} (attempt ${attempt})`)
      return stream
    } catch (err) {
      if (!refused(err)) throw explainTunnelFailure(err, port)
      last = err
    }
    if (Date.now() + delay > deadline) break
    await new Promise((r) => setTimeout(r, delay))
    delay = Math.min(delay * 2, 1_000)
  }
  const why = execError
    ? `running it failed: ${execError.message}`
    : started?.code !== 0
      ? `it exited ${started?.code ?? 'by a signal'}${started?.stderr.trim() ? `: ${started.stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`
      : `it returned, but nothing listened within ${AUTO_START_WAIT_MS / 1000} s`
  throw new TransportError(
    'RECEIVER_NOT_STARTED',
    `nothing listens on 127.0.0.1:${port} on ${transport.label}, and starting the receiver with '${command}' did not help: ${why}`,
    {
      cause: last,
      hint: 'start `vdrep serve` on the replica host (a systemd unit), or set the remote command with `vdrep init --serve-command`; a key restricted to tunnels (restrict,port-forwarding,permitopen=...) cannot start it',
    },
  )
}

/** `p`, or `err()` once `ms` passed (what `p` holds is left to the transport's close). */
async function withTimeout<T>(p: Promise<T>, ms: number, err: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(err()), ms)))])
  } finally {
    clearTimeout(timer)
  }
}
