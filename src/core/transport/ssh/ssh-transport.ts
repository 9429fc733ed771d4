// The SSH transport: one ssh2 connection to the replica host, with host keys checked
// against known_hosts, login by agent and key files, direct-tcpip tunnels to the
// receiver's loopback ports, and `exec` for starting `vdrep serve`. A cut connection
// fails every open tunnel with a TransportError and makes the transport refuse further
// use (sticky failure). What is settled before connecting is in login-settings.ts; the
// fast paths through ssh2's internals are in ssh2-internals.ts, checked at each connect.

import {trace} from '../../util/trace.js'
import type {Duplex} from 'node:stream'
import ssh2 from 'ssh2'
import type {Client as Ssh2Client, ClientChannel} from 'ssh2'
import {TransportError, UsageError, VdrepError} from '../../errors.js'
import {connectError} from './connect-error.js'
import {isUnsupportedAlgorithm} from './ssh2-error-text.js'
import type {PresentedHostKey} from './host-verifier.js'
import {loginSettings, type LoginSettings, type SshTransportOptions} from './login-settings.js'
import {openSsh2Internals, type Ssh2Internals} from './ssh2-internals.js'
import {TunnelStream} from './tunnel-stream.js'
import {WriteCoalescer} from './write-coalescer.js'

export type {SshTransportOptions} from './login-settings.js'

const MAX_EXEC_OUTPUT = 1 << 20

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
  private coalescer: WriteCoalescer | undefined

  /** The host key the server presented. */
  hostKey: PresentedHostKey | undefined
  /** The cipher negotiated (client to server). */
  cipher: string | undefined
  /** Whether the fast paths through ssh2's internals are on; when off, why not. */
  fastPath: {on: true} | {on: false; reason: string} = {on: false, reason: 'not connected'}
  private ready = false
  /** ssh2 emitted 'close': the socket is gone, nothing to wait for. */
  private clientClosed = false

  private constructor(
    private readonly client: Ssh2Client,
    /** `user@host:port`, for messages. */
    readonly label: string,
    private readonly log?: (line: string) => void,
  ) {
    client.on('error', (err: Error) => this.lost(err))
    client.on('end', () => this.lost())
    client.on('close', () => {
      this.clientClosed = true
      this.lost()
    })
  }

  /** Resolves ~/.ssh/config, loads keys and known_hosts, connects and logs in. */
  static async connect(opts: SshTransportOptions): Promise<SshTransport> {
    const log = opts.log
    let settings: LoginSettings
    try {
      settings = await loginSettings(opts)
    } catch (err) {
      opts.early?.drop()
      throw err
    }
    const {config, context} = settings
    const label = context.label
    const client = new ssh2.Client()
    const transport = new SshTransport(client, label, log)
    client.on('handshake', (n: {cs?: {cipher?: string}}) => {
      transport.cipher = n.cs?.cipher
      trace('ssh: key exchange done')
      log?.(`ssh handshake with ${label} done, cipher ${transport.cipher}`)
    })
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error & {level?: string}) => {
        client.removeListener('ready', ok)
        client.removeListener('error', fail)
        client.removeListener('close', closed)
        client.end()
        reject(connectError(err, context))
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
        trace('ssh: connecting')
        log?.(`connecting to ${label}`)
        client.connect(config)
        // From the first byte, not only after login: with Nagle on, the client's second small
        // packet in a row (NEWKEYS, then the ssh-userauth service request) waited for the
        // server's delayed ACK, 40 ms of every login.
        client.setNoDelay(true)
        transport.useInternals(openSsh2Internals(client, {env: opts.env}))
      } catch (err) {
        client.removeListener('ready', ok)
        client.removeListener('error', fail)
        client.removeListener('close', closed)
        config.sock?.destroy()
        reject(isUnsupportedAlgorithm(err) ? new UsageError('BAD_CIPHER', `cannot use the ssh settings: ${(err as Error).message}`, {cause: err}) : err)
      }
    })
    transport.hostKey = context.verification.presented
    // The receiver protocols are request/response: do not let Nagle hold small frames back.
    client.setNoDelay(true)
    trace('ssh: logged in')
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
              ? new TransportError('TUNNEL_REFUSED', `nothing listens on ${where} (${err.message})`, {
                  cause: err,
                  hint: 'start vdrep serve on the replica host',
                })
              : new TransportError('TUNNEL_FAILED', `cannot open a tunnel to ${where}: ${err.message}`, {
                  cause: err,
                  hint: 'check AllowTcpForwarding in the replica host sshd_config',
                }),
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
    const stream = new TunnelStream(channel, where, this.coalescer?.beforeWrite)
    this.streams.add(stream)
    stream.once('close', () => this.streams.delete(stream))
    trace('ssh: tunnel open')
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
      if (this.clientClosed) return resolve()
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

  /** Turns the fast paths on where the internals check passed; says why not otherwise. */
  private useInternals(check: {internals?: Ssh2Internals; reason?: string}): void {
    if (check.internals === undefined) {
      this.fastPath = {on: false, reason: check.reason ?? 'unknown'}
      this.log?.(`ssh2 fast paths off (${this.fastPath.reason}): using ssh2's public API only`)
      return
    }
    this.fastPath = {on: true}
    this.coalescer = new WriteCoalescer(check.internals.socket)
    check.internals.skipHostKeysProve()
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

/** Shorthand for SshTransport.connect. */
export function connectSsh(opts: SshTransportOptions): Promise<SshTransport> {
  return SshTransport.connect(opts)
}
