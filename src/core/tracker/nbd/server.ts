// The NBD server `vdrep track` runs: one export, listening on unix:PATH or HOST:PORT
// (TCP on loopback only unless listenAny), any number of clients at once.
//
// NBD has no authentication, and a loopback port is open to every local user: with
// `allowedPeerUids`, a TCP connection is served only when the socket at its other end belongs
// to one of those uids (the tracker passes its own and root's, so qemu run by the same user
// works). A unix socket is guarded by its file mode instead.

import {chmod, lstat, unlink} from 'node:fs/promises'
import net from 'node:net'
import {UsageError} from '../../errors.js'
import {peerUid} from '../../native/peer-credentials.js'
import type {NbdBackend} from './backend.js'
import {NbdConnection} from './connection.js'
import * as C from './constants.js'
import {ExportLocks} from './range-lock.js'

export interface NbdServerOptions {
  /** One line per connection when it ends. No-op by default. */
  logger?: (line: string) => void
  /** Allow TCP on non-loopback addresses (nothing in NBD authenticates the client). */
  listenAny?: boolean
  /** Advertise NBD_FLAG_READ_ONLY and refuse writes with EPERM. */
  readOnly?: boolean
  /** Largest READ/WRITE payload, also the advertised maximum block size. Default 32 MiB. */
  maxPayload?: number
  /** close(): connections still busy after this long are dropped. Default 10 s. */
  closeTimeoutMs?: number
  /**
   * Serve a TCP connection only when its local peer socket is owned by one of these uids
   * (hung up before the handshake otherwise). A peer whose owner cannot be found is refused,
   * unless it is on another host and listenAny allowed that. Unset: anyone is served.
   */
  allowedPeerUids?: readonly number[]
  /** One line per refused connection. Default: the logger. */
  onRefused?: (line: string) => void
  /**
   * Mode of a unix socket, set as it is made (umask around the bind, then checked): no other
   * user may connect even for an instant. Unset: the process umask decides.
   */
  unixMode?: number
}

export type NbdListenSpec = {kind: 'unix'; path: string} | {kind: 'tcp'; host: string; port: number}
export type NbdAddress = NbdListenSpec

/** Longest unix socket path Linux accepts (sun_path is 108 bytes with the NUL). */
const MAX_UNIX_PATH = 107

/** Parse `unix:PATH`, `HOST:PORT` or `[IPV6]:PORT`. */
export function parseListenSpec(spec: string): NbdListenSpec {
  const bad = (why: string): UsageError =>
    new UsageError('NBD_LISTEN', `bad NBD address "${spec}": ${why}`, {hint: 'use unix:/path/to/socket or 127.0.0.1:10809'})
  if (spec.startsWith('unix:')) {
    const path = spec.slice(5)
    if (path === '') throw bad('the socket path is empty')
    if (Buffer.byteLength(path) > MAX_UNIX_PATH) throw bad(`the socket path is longer than ${MAX_UNIX_PATH} bytes`)
    return {kind: 'unix', path}
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(spec)
  if (!m) throw bad('expected unix:PATH or HOST:PORT')
  const port = Number(m[3])
  if (port > 65535) throw bad(`port ${port} is out of range`)
  return {kind: 'tcp', host: m[1] ?? m[2], port}
}

export function isLoopback(host: string): boolean {
  const h = host.toLowerCase()
  if (h === 'localhost' || h === '::1') return true
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h
  return net.isIPv4(v4) && v4.startsWith('127.')
}

function isLiveSocket(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({path})
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

export class NbdServer {
  private readonly listeners: Array<{server: net.Server; address: NbdAddress}> = []
  private readonly connections = new Set<NbdConnection>()
  private readonly locks = new ExportLocks()
  private readonly logger: (line: string) => void
  private readonly maxPayload: number
  private readonly flags: number
  private nextId = 1
  private closing: Promise<void> | null = null

  /** The exports served, by name; the first is also the default export (the empty name). */
  readonly backends: NbdBackend[]

  constructor(
    backend: NbdBackend | NbdBackend[],
    private readonly opts: NbdServerOptions = {},
  ) {
    this.backends = Array.isArray(backend) ? backend : [backend]
    const names = new Set(this.backends.map((b) => b.exportName))
    if (this.backends.length === 0 || names.size !== this.backends.length)
      throw new UsageError('USAGE', 'an NBD server needs one or more exports of distinct names')
    this.logger = opts.logger ?? (() => {})
    this.maxPayload = opts.maxPayload ?? C.DEFAULT_MAX_PAYLOAD
    if (!Number.isInteger(this.maxPayload) || this.maxPayload < 4096 || this.maxPayload > C.DEFAULT_MAX_PAYLOAD * 4) {
      throw new UsageError('NBD_MAX_PAYLOAD', `maxPayload ${this.maxPayload} must be an integer from 4096 to ${C.DEFAULT_MAX_PAYLOAD * 4}`)
    }
    this.flags =
      C.NBD_FLAG_HAS_FLAGS |
      C.NBD_FLAG_SEND_FLUSH |
      C.NBD_FLAG_SEND_FUA |
      C.NBD_FLAG_SEND_TRIM |
      C.NBD_FLAG_SEND_WRITE_ZEROES |
      C.NBD_FLAG_CAN_MULTI_CONN |
      (opts.readOnly ? C.NBD_FLAG_READ_ONLY : 0)
  }

  /** The first export (the default one). */
  get backend(): NbdBackend {
    return this.backends[0]
  }

  /** Address of the first listener (with the real port when listening on port 0). */
  get address(): NbdAddress | null {
    return this.listeners[0]?.address ?? null
  }

  get addresses(): NbdAddress[] {
    return this.listeners.map((l) => l.address)
  }

  /** Clients connected now. */
  get connectionCount(): number {
    return this.connections.size
  }

  /** Start listening on `unix:PATH` or `HOST:PORT`; may be called more than once. */
  async listen(spec: string | NbdListenSpec): Promise<NbdAddress> {
    if (this.closing) throw new UsageError('NBD_CLOSED', 'the NBD server is closed')
    const where = typeof spec === 'string' ? parseListenSpec(spec) : spec
    if (where.kind === 'tcp' && !this.opts.listenAny && !isLoopback(where.host)) {
      throw new UsageError('NBD_NOT_LOOPBACK', `refusing to serve NBD on ${where.host}: NBD has no authentication`, {
        hint: 'listen on 127.0.0.1 or a unix socket, or allow other addresses explicitly',
      })
    }
    const label = where.kind === 'unix' ? where.path : `${where.host}:${where.port}`
    let server: net.Server
    try {
      server = where.kind === 'unix' ? await this.listenUnix(where.path) : await this.bind({host: where.host, port: where.port}, 'tcp')
    } catch (err) {
      if (err instanceof UsageError) throw err
      throw new UsageError('NBD_LISTEN', `cannot listen on ${label}: ${(err as Error).message}`, {cause: err})
    }
    const address: NbdAddress = where.kind === 'unix' ? where : {kind: 'tcp', host: where.host, port: (server.address() as net.AddressInfo).port}
    this.listeners.push({server, address})
    return address
  }

  /** Stop listening, let in-flight requests finish and close every connection. */
  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown(): Promise<void> {
    const stopped = this.listeners.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve())))
    for (const c of this.connections) c.stop()
    const timer = setTimeout(() => {
      for (const c of this.connections) c.destroy()
    }, this.opts.closeTimeoutMs ?? 10_000)
    await Promise.all([...stopped, ...[...this.connections].map((c) => c.done)])
    clearTimeout(timer)
  }

  private async listenUnix(path: string): Promise<net.Server> {
    try {
      return await this.bind({path}, 'unix')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
      const st = await lstat(path)
      if (!st.isSocket()) throw new UsageError('NBD_SOCKET_PATH', `${path} exists and is not a socket`, {cause: err})
      if (await isLiveSocket(path)) {
        throw new UsageError('NBD_SOCKET_IN_USE', `${path} is in use by another process`, {
          hint: 'stop the other tracker or choose another socket path',
          cause: err,
        })
      }
      await unlink(path) // stale socket left by a killed process
      return this.bind({path}, 'unix')
    }
  }

  private async bind(opts: net.ListenOptions, kind: 'unix' | 'tcp'): Promise<net.Server> {
    // Paused: the connection takes the socket over before anything is read (SocketReader.adopt).
    const server = net.createServer({pauseOnConnect: true}, (socket) => this.accept(socket, kind))
    const mode = kind === 'unix' ? this.opts.unixMode : undefined
    const listening = new Promise<net.Server>((resolve, reject) => {
      server.once('error', reject)
      // Node binds a unix socket synchronously inside listen(): the umask covers exactly that bind.
      const old = mode === undefined ? undefined : process.umask(0o777 & ~mode)
      try {
        server.listen(opts, () => {
          server.off('error', reject)
          server.on('error', (err) => this.logger(`nbd: listener error: ${err.message}`))
          resolve(server)
        })
      } finally {
        if (old !== undefined) process.umask(old)
      }
    })
    await listening
    if (mode !== undefined && opts.path !== undefined) {
      await chmod(opts.path, mode)
      const st = await lstat(opts.path)
      if ((st.mode & 0o777) !== mode) {
        server.close()
        throw new UsageError('NBD_SOCKET_PATH', `${opts.path} has mode ${(st.mode & 0o777).toString(8)}, not ${mode.toString(8)}`)
      }
    }
    return server
  }

  private accept(socket: net.Socket, kind: 'unix' | 'tcp'): void {
    if (this.closing) {
      socket.destroy()
      return
    }
    const peer = kind === 'tcp' ? ` ${socket.remoteAddress}:${socket.remotePort}` : ''
    if (kind === 'tcp') {
      const refusal = this.peerRefusal(socket)
      if (refusal) {
        ;(this.opts.onRefused ?? this.logger)(`nbd: refused a connection from${peer}: ${refusal}`)
        socket.destroy()
        return
      }
      socket.setNoDelay(true)
    }
    const conn = new NbdConnection(socket, `${kind}#${this.nextId++}${peer}`, {
      findExport: (name) => (name === '' ? this.backend : this.backends.find((b) => b.exportName === name)),
      exportNames: () => this.backends.map((b) => b.exportName),
      transmissionFlags: this.flags,
      maxPayload: this.maxPayload,
      readOnly: this.opts.readOnly ?? false,
      locks: this.locks,
      logger: this.logger,
    })
    this.connections.add(conn)
    void conn.done.finally(() => this.connections.delete(conn))
  }

  /** Why this TCP peer may not use the export, or null. */
  private peerRefusal(socket: net.Socket): string | null {
    const allowed = this.opts.allowedPeerUids
    if (!allowed) return null
    const uid = peerUid(socket)
    if (uid !== undefined) return allowed.includes(uid) ? null : `uid ${uid} may not use this export (only uid ${allowed.join(' and ')} may)`
    // No local socket owns it: a peer on another host, which only --listen-any lets in.
    if (this.opts.listenAny && socket.remoteAddress !== undefined && !isLoopback(socket.remoteAddress)) return null
    return 'the uid that owns it cannot be found'
  }
}
