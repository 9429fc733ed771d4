// The checks `vdrep check` runs against an SSH target, in the order a push meets them: the
// host name resolves, its SSH port answers, its host key is in known_hosts (if not: the key's
// fingerprint and the line to add, never added here), the login works, a vdrep receiver
// answers on both ports (or the serve command starts one, as a push would), the replica path
// is under the receiver's root, and its filesystem has room. A failed step skips those that
// need it.
import dns from 'node:dns/promises'
import net from 'node:net'
import {homedir} from 'node:os'
import {join} from 'node:path'
import {asVdrepError, type VdrepError} from '../errors.js'
import type {PsfHeader} from '../psf/header.js'
import type {Target} from '../target/target.js'
import type {Carrier} from '../transport/carrier.js'
import {sshCarrier} from '../transport/ssh-carrier.js'
import {DEFAULT_SERVE_COMMAND, openOrStart, sshKeepalive, type Tunnels} from '../transport/ssh-connect.js'
import {describeKeyType} from '../transport/ssh/host-key.js'
import {formatKnownHostLine, knownHostName} from '../transport/ssh/known-hosts.js'
import {resolveSshHost} from '../transport/ssh/ssh-config.js'
import {connectSsh, type SshTransport} from '../transport/ssh/ssh-transport.js'
import {formatDuration} from '../util/units.js'
import type {Checklist} from './checklist.js'
import {scanHostKey} from './host-key-scan.js'
import {probe} from './probe.js'
import {roomVerdict} from './room-verdict.js'

type SshTarget = Extract<Target, {kind: 'ssh'}>

export interface RemoteCheckOptions {
  timeoutMs: number
  /** Start a receiver with the serve command when none listens (else only say a push would). */
  startReceiver: boolean
  log?: (line: string) => void
}

export const AFTER_LOGIN = ['receiver-delta', 'receiver-fullsync', 'replica-path', 'room']

export async function checkSshTarget(t: SshTarget, header: PsfHeader, list: Checklist, opts: RemoteCheckOptions): Promise<void> {
  const ssh = header.settings.ssh ?? {}
  if (ssh.carrier === 'openssh') {
    const {checkOpenSshTarget} = await import('./remote-openssh.js')
    return checkOpenSshTarget(t, header, list, opts)
  }
  const cfg = await resolveSshHost({host: t.host, user: t.user ?? ssh.user, port: t.port ?? ssh.port})
  let address: string
  try {
    address = (await dns.lookup(cfg.hostName)).address
    list.ok('host', cfg.hostName === address ? `${address}` : `${cfg.hostName} is ${address}`)
  } catch (err) {
    list.fail(
      'host',
      `${cfg.hostName} does not resolve: ${(err as Error).message}`,
      'check the host in the target (vdrep init --to), DNS or /etc/hosts, or HostName in ~/.ssh/config',
    )
    list.skip(['ssh-port', 'host-key', 'login', ...AFTER_LOGIN], 'the host does not resolve')
    return
  }
  const reach = await tcpReach(address, cfg.port, opts.timeoutMs)
  if (reach !== undefined) {
    list.fail(
      'ssh-port',
      `${address}:${cfg.port}: ${reach}`,
      reach.includes('refused')
        ? `start sshd on the replica host, or give its port in the target (host:PORT:/path)`
        : 'check the network and firewalls between the hosts',
    )
    list.skip(['host-key', 'login', ...AFTER_LOGIN], 'the SSH port does not answer')
    return
  }
  list.ok('ssh-port', `${address}:${cfg.port} answers`)

  const knownHostsFile = ssh.knownHostsFile ?? cfg.knownHostsFile ?? join(homedir(), '.ssh', 'known_hosts')
  let transport: SshTransport
  try {
    transport = await connectSsh({
      host: t.host,
      user: t.user ?? ssh.user,
      port: t.port ?? ssh.port,
      identityFiles: ssh.identityFiles,
      knownHostsFile: ssh.knownHostsFile,
      acceptNewHostKey: false,
      log: opts.log,
      readyTimeoutMs: opts.timeoutMs,
      ...sshKeepalive(opts.timeoutMs),
    })
  } catch (err) {
    await loginFailed(asVdrepError(err), {address, port: cfg.port, name: cfg.hostKeyAlias ?? knownHostName(cfg.hostName, cfg.port), knownHostsFile}, list, opts)
    list.skip(AFTER_LOGIN, 'no login')
    return
  }
  try {
    const key = transport.hostKey
    list.ok('host-key', `${key ? `${describeKeyType(key.type)} ${key.fingerprint}` : 'the key'} is in ${knownHostsFile}`)
    list.ok('login', `logged in as ${transport.label}`)
    await checkReceiver(transport, t, header, list, opts)
  } finally {
    await transport.close()
  }
}

async function loginFailed(
  e: VdrepError,
  where: {address: string; port: number; name: string; knownHostsFile: string},
  list: Checklist,
  opts: RemoteCheckOptions,
): Promise<void> {
  if (e.code === 'HOST_KEY_UNKNOWN') {
    const key = await scanHostKey(where.address, where.port, opts.timeoutMs)
    const line = key ? formatKnownHostLine(where.name, key.blob) : undefined
    list.fail(
      'host-key',
      `${where.name} is not in ${where.knownHostsFile}${key ? `: it presents an ${describeKeyType(key.type)} key, fingerprint ${key.fingerprint}` : ''}`,
      `compare the fingerprint with the replica host's (ssh-keygen -lf /etc/ssh/ssh_host_${key?.type === 'ssh-rsa' ? 'rsa' : key?.type.startsWith('ecdsa') ? 'ecdsa' : 'ed25519'}_key.pub there); if it matches, add it:` +
        (line ? ` echo '${line}' >> ${where.knownHostsFile}` : ` ssh-keyscan -p ${where.port} ${where.address} >> ${where.knownHostsFile}`) +
        ' (or run the first push or full sync with --accept-new-host-key)',
    )
    list.skip(['login'], 'the host key is not known')
    return
  }
  if (e.code.startsWith('HOST_KEY') || e.code.startsWith('KNOWN_HOSTS')) {
    list.fail('host-key', e.message, e.hint)
    list.skip(['login'], 'the host key was refused')
    return
  }
  list.ok('host-key', `the host key is in ${where.knownHostsFile}`)
  list.fail('login', e.message, e.hint ?? 'check the user, the identity file (--identity) and the authorized_keys on the replica host')
}

export async function checkReceiver(transport: Tunnels, t: SshTarget, header: PsfHeader, list: Checklist, opts: RemoteCheckOptions): Promise<void> {
  const {deltaPort, fullsyncPort} = header.settings
  const command = header.settings.ssh?.serveCommand ?? DEFAULT_SERVE_COMMAND
  const open = async (port: number) => {
    let started = false
    const stream = await transport.openStream(port).catch(async (err: unknown) => {
      if (asVdrepError(err).code !== 'TUNNEL_REFUSED') throw err
      if (!opts.startReceiver) throw new NotStarted(port, command)
      started = true
      return openOrStart(transport, port, command, opts.log, opts.timeoutMs)
    })
    const conn = sshCarrier({
      stream,
      replicaPath: t.path,
      reopen: () => transport.openStream(port),
      release: async () => {},
      timeoutMs: opts.timeoutMs,
      label: `${transport.label} (port ${port})`,
      log: opts.log,
    })
    return {conn, started}
  }
  const say = (started: boolean) => (started ? ` (nothing listened: started with '${command}')` : '')
  // The delta port: the receiver, the path and the room.
  let answer
  try {
    const {conn, started} = await open(deltaPort)
    try {
      answer = await probe(conn, header, true)
    } finally {
      conn.abort()
      await conn.close().catch(() => {})
    }
    if (answer.kind === 'closed' || answer.kind === 'other')
      throw new Error(answer.kind === 'closed' ? 'it closed the connection at the hello' : `it answered frame type ${answer.type}`)
    list.ok('receiver-delta', `a vdrep receiver answers on 127.0.0.1:${deltaPort}${say(started)}`)
  } catch (err) {
    if (err instanceof NotStarted) {
      list.warn('receiver-delta', err.message, 'run vdrep check once a receiver runs there (vdrep serve, or let the first sync start it)')
      list.skip(['receiver-fullsync', 'replica-path', 'room'], 'no receiver runs yet')
      return
    }
    const e = asVdrepError(err)
    list.fail(
      'receiver-delta',
      `127.0.0.1:${deltaPort} on ${transport.label}: ${e.message}`,
      e.hint ?? 'start vdrep serve on the replica host (its systemd unit), or set --serve-command',
    )
  }
  await checkFullsyncPort(open, fullsyncPort, transport.label, header, list, say)
  if (answer === undefined || answer.kind === 'closed' || answer.kind === 'other') {
    list.skip(['replica-path', 'room'], 'no receiver answers on the delta port')
    return
  }
  if (answer.kind === 'error') {
    const {code, message, hint} = answer.error
    if (code === 'FRAME_MALFORMED' && /op/.test(message)) {
      list.warn('replica-path', 'the receiver is an older vdrep that cannot answer where the replica goes', 'install the same vdrep release on both hosts')
      list.skip(['room'], 'not asked of an older receiver')
    } else {
      list.fail('replica-path', `replica host: ${code}: ${message}`, hint || undefined)
      list.skip(['room'], 'the replica path was refused')
    }
    return
  }
  roomVerdict(answer.room, header.diskSize, t.path, list)
}

async function checkFullsyncPort(
  open: (port: number) => Promise<{conn: Carrier; started: boolean}>,
  port: number,
  label: string,
  header: PsfHeader,
  list: Checklist,
  say: (started: boolean) => string,
): Promise<void> {
  try {
    const {conn, started} = await open(port)
    let answer
    try {
      answer = await probe(conn, header, false)
    } finally {
      conn.abort()
      await conn.close().catch(() => {})
    }
    // A vdrep receiver serves no query on its full-sync port: it says so, and that is the answer wanted.
    if (answer.kind === 'error' && answer.error.code === 'WRONG_PORT')
      list.ok('receiver-fullsync', `a vdrep receiver answers on 127.0.0.1:${port}${say(started)}`)
    else
      list.fail(
        'receiver-fullsync',
        `127.0.0.1:${port} on ${label} answered ${answer.kind === 'error' ? answer.error.code : answer.kind}, not as a vdrep full-sync port`,
        'the target settings name the ports of vdrep serve on the replica host (--fullsync-port, --delta-port)',
      )
  } catch (err) {
    const e = asVdrepError(err)
    list.fail('receiver-fullsync', `127.0.0.1:${port} on ${label}: ${e.message}`, e.hint ?? 'start vdrep serve on the replica host')
  }
}

/** Nothing listens, and this check was told not to start a receiver. */
class NotStarted extends Error {
  constructor(port: number, command: string) {
    super(`nothing listens on 127.0.0.1:${port} yet; the first sync starts the receiver with '${command}'`)
  }
}

/** undefined when a TCP connection opens, else why not. */
function tcpReach(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({host, port})
    const timer = setTimeout(() => {
      s.destroy()
      resolve(`no answer within ${formatDuration(timeoutMs / 1000)}`)
    }, timeoutMs)
    s.once('connect', () => {
      clearTimeout(timer)
      s.destroy()
      resolve(undefined)
    })
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      resolve(err.code === 'ECONNREFUSED' ? 'connection refused' : err.message)
    })
  })
}
