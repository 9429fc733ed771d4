// The SSH transport: one ssh2 connection to the replica host, with host keys checked
// against known_hosts, login by agent and key files, direct-tcpip tunnels to the
// receiver's loopback ports, and `exec` for starting `vdrep serve`. A cut connection
// fails every open tunnel with a TransportError and makes the transport refuse further
// use (sticky failure).

import {homedir} from 'node:os'
import {join} from 'node:path'
import type {Duplex} from 'node:stream'
import type {Socket} from 'node:net'
import ssh2 from 'ssh2'
import type {CipherAlgorithm, Client as Ssh2Client, ClientChannel, ConnectConfig} from 'ssh2'
import {TransportError, UsageError, VdrepError} from '../../errors.js'
import {HostVerification, noCommonHostKeyError, type PresentedHostKey} from './host-verifier.js'
import {describeCredentials, identitySources, loadCredentials, makeAuthHandler} from './identities.js'
import {knownHostName} from './known-hosts.js'
import {resolveSshHost} from './ssh-config.js'
import {TunnelStream} from './tunnel-stream.js'

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
  /** ssh2's own protocol trace, one line per packet (for tests and debugging). */
  debug?: (line: string) => void
}

const MAX_EXEC_OUTPUT = 1 << 20

/** Corked socket writes go out once this much is waiting (see coalesceWrites). */
const COALESCE_BYTES = 128 << 10

export interface ExecResult {
  /** The exit status, or null when the command died of a signal. */
  code: number | null
  stdout: string
  stderr: string
}

export class SshTransport {
  private readonly streams = new Set<TunnelStream>()
  private failure: VdrepError | undefined
  private closing = false
  private corked = false

  /** The host key the server presented. */
  hostKey: PresentedHostKey | undefined
  /** The cipher negotiated (client to server). */
  cipher: string | undefined
  private ready = false

  private constructor(
    private readonly client: Ssh2Client,
    /** `user@host:port`, for messages. */
    readonly label: string,
    private readonly log?: (line: string) => void,
  ) {
    client.on('error', (err: Error) => this.lost(err))
    client.on('end', () => this.lost())
    client.on('close', () => this.lost())
  }

  /** Resolves ~/.ssh/config, loads keys and known_hosts, connects and logs in. */
  static async connect(opts: SshTransportOptions): Promise<SshTransport> {
    const log = opts.log
    const homeDir = opts.homeDir ?? homedir()
    const cfg = await resolveSshHost({host: opts.host, user: opts.user, port: opts.port, configFile: opts.configFile, homeDir})
    for (const d of cfg.ignored) log?.(`ssh config: ${d} is set for ${opts.host} but vdrep does not apply it`)
    const label = `${cfg.user}@${cfg.hostName.includes(':') ? `[${cfg.hostName}]` : cfg.hostName}:${cfg.port}`
    const knownHostsFile = opts.knownHostsFile ?? cfg.knownHostsFile ?? join(homeDir, '.ssh', 'known_hosts')
    // As OpenSSH: HostKeyAlias is the known_hosts name as it stands, without the port.
    const lookupName = cfg.hostKeyAlias !== undefined ? cfg.hostKeyAlias.toLowerCase() : knownHostName(cfg.hostName, cfg.port)
    const verification = await HostVerification.prepare({knownHostsFile, lookupName, acceptNewHostKey: opts.acceptNewHostKey, log})

    let agentSocket: string | undefined
    if (opts.useAgent !== false && cfg.identityAgent !== 'none') {
      agentSocket = opts.agentSocket ?? (cfg.identityAgent === undefined || cfg.identityAgent === 'SSH_AUTH_SOCK' ? process.env['SSH_AUTH_SOCK'] : cfg.identityAgent)
    }
    const creds = await loadCredentials(identitySources(opts.identityFiles ?? [], cfg.identityFiles, homeDir), agentSocket, log)
    if (!creds.agentSocket && creds.identities.length === 0) {
      throw new TransportError('SSH_NO_IDENTITY', `no ssh key to log in to ${label} with: no agent and no usable identity file${creds.skipped.length ? ` (skipped: ${creds.skipped.join('; ')})` : ''}`, {
        hint: 'create a key with ssh-keygen, load one into ssh-agent, or name one with --identity',
      })
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

    const client = new ssh2.Client()
    const transport = new SshTransport(client, label, log)
    client.on('handshake', (n: {cs?: {cipher?: string}}) => {
      transport.cipher = n.cs?.cipher
      log?.(`ssh handshake with ${label} done, cipher ${transport.cipher}`)
    })
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error & {level?: string}) => {
        client.removeListener('ready', ok)
        client.removeListener('error', fail)
        client.removeListener('close', closed)
        client.end()
        reject(connectError(err, label, verification, knownHostsFile, lookupName, describeCredentials(creds), creds.skipped))
      }
      // ssh2 reports a connection dropped mid-handshake by 'close' alone.
      const closed = () => fail(new Error('the server closed the connection before login completed'))
      const ok = () => {
        client.removeListener('error', fail)
        client.removeListener('close', closed)
        transport.ready = true
        resolve()
      }
      client.once('ready', ok)
      client.on('error', fail)
      client.once('close', closed)
      try {
        log?.(`connecting to ${label}`)
        client.connect(config)
        // From the first byte, not only after login: with Nagle on, the client's second small
        // packet in a row (NEWKEYS, then the ssh-userauth service request) waited for the
        // server's delayed ACK, 40 ms of every login.
        client.setNoDelay(true)
        skipHostKeysProve(client)
      } catch (err) {
        client.removeListener('ready', ok)
        client.removeListener('error', fail)
        client.removeListener('close', closed)
        reject(/Unsupported algorithm/.test(String(err)) ? new UsageError('BAD_CIPHER', `cannot use the ssh settings: ${(err as Error).message}`, {cause: err}) : err)
      }
    })
    transport.hostKey = verification.presented
    // The receiver protocols are request/response: do not let Nagle hold small frames back.
    client.setNoDelay(true)
    log?.(`logged in to ${label}`)
    return transport
  }

  async openStream(port: number): Promise<Duplex> {
    this.checkUsable()
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError('BAD_PORT', `bad receiver port ${port}`)
    const where = `127.0.0.1:${port} on ${this.label}`
    const channel = await new Promise<ClientChannel>((resolve, reject) => {
      try {
        this.client.forwardOut('127.0.0.1', 0, '127.0.0.1', port, (err, ch) => {
          if (!err) return resolve(ch)
          if (this.failure) return reject(this.failure)
          const reason = (err as Error & {reason?: number}).reason
          reject(
            reason === 2
              ? new TransportError('TUNNEL_REFUSED', `nothing listens on ${where} (${err.message})`, {cause: err, hint: 'start vdrep serve on the replica host'})
              : new TransportError('TUNNEL_FAILED', `cannot open a tunnel to ${where}: ${err.message}`, {cause: err, hint: 'check AllowTcpForwarding in the replica host sshd_config'}),
          )
        })
      } catch (err) {
        reject(this.failure ?? new TransportError('SSH_CLOSED', `cannot open a tunnel to ${where}: ${(err as Error).message}`, {cause: err}))
      }
    })
    if (this.failure) {
      channel.close()
      throw this.failure
    }
    const stream = new TunnelStream(channel, where, this.coalesceWrites)
    this.streams.add(stream)
    stream.once('close', () => this.streams.delete(stream))
    this.log?.(`opened tunnel to ${where}`)
    return stream
  }

  async exec(command: string): Promise<ExecResult> {
    this.checkUsable()
    return new Promise<ExecResult>((resolve, reject) => {
      const fail = (err: unknown) =>
        reject(this.failure ?? new TransportError('SSH_EXEC', `cannot run '${command}' on ${this.label}: ${(err as Error).message}`, {cause: err}))
      try {
        this.client.exec(command, (err, ch) => {
          if (err) return fail(err)
          const out: Buffer[] = []
          const errOut: Buffer[] = []
          let size = 0
          const keep = (list: Buffer[]) => (chunk: Buffer) => {
            if (size >= MAX_EXEC_OUTPUT) return
            list.push(chunk.subarray(0, MAX_EXEC_OUTPUT - size))
            size += chunk.length
          }
          ch.on('data', keep(out))
          ch.stderr.on('data', keep(errOut))
          const onLost = () => fail(new Error('the connection was lost'))
          this.client.once('close', onLost)
          ch.on('close', (code: number | null | undefined) => {
            this.client.removeListener('close', onLost)
            if (this.failure) return reject(this.failure)
            resolve({code: typeof code === 'number' ? code : null, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8')})
          })
          ch.end()
        })
      } catch (err) {
        fail(err)
      }
    })
  }

  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    // A deliberate close ends tunnels without an error event (a reader waiting in
    // pipeline() or finished() still sees a premature close); a cut one already failed them.
    for (const s of this.streams) s.destroy()
    this.streams.clear()
    this.failure ??= new TransportError('SSH_CLOSED', `the ssh transport to ${this.label} is closed`)
    await new Promise<void>((resolve) => {
      const sock = this.socket()
      if (!sock || sock.destroyed) return resolve()
      const timer = setTimeout(() => {
        this.client.destroy()
        resolve()
      }, 5_000)
      this.client.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
      this.client.end()
    })
  }

  /**
   * Packets written from now to the end of this tick leave in one writev. ssh2 writes every
   * packet (32 KiB at most: the server's channel packet size) to the socket on its own, and a
   * write to a loopback or LAN socket is a system call that also wakes the peer: a 64 KiB
   * frame was three of them. Corked for the tick, a burst of frames is one.
   */
  private readonly coalesceWrites = (): void => {
    const sock = this.socket()
    if (!sock || sock.destroyed) return
    if (this.corked) {
      // A sender that never yields would hold a whole SSH window (2 MiB) back until the end
      // of its tick, and the far side would get it in stop-and-go bursts: let it go in
      // pieces of COALESCE_BYTES.
      if (sock.writableLength >= COALESCE_BYTES) {
        sock.uncork()
        sock.cork()
      }
      return
    }
    this.corked = true
    sock.cork()
    process.nextTick(() => {
      this.corked = false
      sock.uncork()
    })
  }

  /** ssh2's socket (not public API; ssh2 is pinned to 1.x in package.json). */
  private socket(): Socket | undefined {
    return (this.client as unknown as {_sock?: Socket})._sock
  }

  private checkUsable(): void {
    if (this.failure) throw this.failure
  }

  /** The connection ended without close(): fail everything that uses it. */
  private lost(cause?: Error): void {
    if (!this.ready || this.closing || this.failure) return
    const why = cause ? `: ${cause.message}` : ''
    this.failure = new TransportError('SSH_CONNECTION_LOST', `the ssh connection to ${this.label} was cut${why}`, {
      cause,
      hint: 'check the network and the replica host, then run the command again',
    })
    this.log?.(this.failure.message)
    for (const s of this.streams) s.abort(this.failure)
    this.streams.clear()
  }
}

/**
 * sshd announces all its host keys after login (`hostkeys-00@openssh.com`, for OpenSSH's
 * UpdateHostKeys), and ssh2 answers every announcement by asking the server to prove them
 * (`hostkeys-prove-00@openssh.com`: a signature with each host key, checked by the client).
 * vdrep never learns keys that way (known_hosts is the only trust), so that is work for
 * nothing on both sides, and its reply cost a push 40 ms: sshd sets no TCP_NODELAY on a
 * session without a tty, so the receiver's HELLO_OK waited (Nagle) behind that reply until
 * the client's delayed ACK. Here the announcement gets an SSH_MSG_IGNORE instead, which asks
 * for nothing and carries the ACK of what sshd sent (the announcement and its DEBUG lines), so
 * the channel confirmation that follows is not held back either. Reaches into ssh2's protocol
 * object (not public API; ssh2 is pinned to 1.x): where it differs, ssh2's own answer stays.
 */
export function skipHostKeysProve(client: Ssh2Client): void {
  type Handler = (proto: unknown, name: string, wantReply: boolean, data: unknown) => void
  interface Writer {
    allocStart: number
    alloc(n: number): Buffer
    finalize(packet: Buffer): Buffer
  }
  interface Proto {
    _handlers?: Record<string, Handler | undefined>
    _packetRW?: {write?: Writer}
    _cipher?: {encrypt(packet: Buffer): void}
    _kexinit?: unknown
    requestFailure?: () => void
  }
  const proto = (client as unknown as {_protocol?: Proto})._protocol
  const handlers = proto?._handlers
  const original = handlers?.['GLOBAL_REQUEST']
  if (!proto || !handlers || typeof original !== 'function') return
  const sendIgnore = (): boolean => {
    const w = proto._packetRW?.write
    if (!w || typeof w.alloc !== 'function' || typeof w.finalize !== 'function' || typeof proto._cipher?.encrypt !== 'function') return false
    if (proto._kexinit !== undefined) return false // a rekey is running: let ssh2 answer as it would
    const p = w.allocStart
    const packet = w.alloc(1 + 4)
    packet[p] = 2 // SSH_MSG_IGNORE
    packet.writeUInt32BE(0, p + 1) // string data: empty
    proto._cipher.encrypt(w.finalize(packet))
    return true
  }
  handlers['GLOBAL_REQUEST'] = (p, name, wantReply, data) => {
    if (name !== 'hostkeys-00@openssh.com') return original(p, name, wantReply, data)
    if (wantReply && typeof proto.requestFailure === 'function') return proto.requestFailure()
    if (!wantReply && sendIgnore()) return
    return original(p, name, wantReply, data)
  }
  // The DEBUG lines sshd sends after login (the key's options) can come in a segment of their
  // own, after the announcement's IGNORE went out: acknowledge them the same way, or the
  // channel confirmation waits behind them.
  const debug = handlers['DEBUG']
  handlers['DEBUG'] = (...args: unknown[]) => {
    sendIgnore()
    if (typeof debug === 'function') (debug as (...a: unknown[]) => void)(...args)
  }
}

function connectError(
  err: Error & {level?: string; code?: string},
  label: string,
  v: HostVerification,
  knownHostsFile: string,
  lookupName: string,
  offered: string,
  skipped: string[],
): VdrepError {
  if (v.failure) return v.failure
  if (err instanceof VdrepError) return err
  if (err.level === 'handshake' && /host key/i.test(err.message) && v.algorithms) {
    return noCommonHostKeyError(lookupName, knownHostsFile, v.algorithms, err)
  }
  if (err.level === 'handshake' && /cipher/i.test(err.message)) {
    return new UsageError('BAD_CIPHER', `${label} accepts none of the ciphers asked for: ${err.message}`, {cause: err})
  }
  if (err.level === 'client-authentication') {
    return new TransportError('SSH_AUTH', `ssh login to ${label} failed: the server accepted none of the keys offered (${offered})${skipped.length ? `; skipped: ${skipped.join('; ')}` : ''}`, {
      cause: err,
      hint: 'add your public key to the authorized_keys of that user on the replica host, load the right key into ssh-agent, or name it with --identity',
    })
  }
  if (err.level === 'client-timeout') {
    return new TransportError('SSH_TIMEOUT', `no ssh answer from ${label} in time: ${err.message}`, {cause: err})
  }
  return new TransportError('SSH_CONNECT', `cannot connect to ${label}: ${err.message}`, {
    cause: err,
    hint: 'check the host name and port, and that sshd runs on the replica host',
  })
}

/** Shorthand for SshTransport.connect. */
export function connectSsh(opts: SshTransportOptions): Promise<SshTransport> {
  return SshTransport.connect(opts)
}
