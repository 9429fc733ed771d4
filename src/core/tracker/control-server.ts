// The tracker's control socket: a unix socket, mode 0600, that only the tracker's own uid
// and root may use (checked per connection with SO_PEERCRED). Requests are served one at
// a time per connection; see control-protocol.ts for the frames.
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import {asVdrepError, PeerGoneError, UsageError, type VdrepError} from '../errors.js'
import {nativeAvailable} from '../native/binding.js'
import {peerUid} from '../native/peer-credentials.js'
import type {Bitmap} from '../psf/bitmap.js'
import {SocketReader} from '../transport/socket-reader.js'
import {CONTROL_HEADER_SIZE, decodeHeader, decodeJson, encodeFrame, FrameKind, parseRequest, type ControlRequest} from './control-protocol.js'

/** The requests that change the record (everything but status, freeze, release, read, complete and pending). */
export type RecordRequest = Exclude<ControlRequest, {op: 'status' | 'freeze' | 'release' | 'read' | 'complete' | 'pending'}>

/** Control connections served at once. */
const MAX_CLIENTS = 64

export interface ControlHandler {
  status(): object
  freeze(conn: number, preserve: boolean, holdMs?: number): Promise<{body: object; bitmap: Bitmap}>
  /** A group push's cut is taken on every member: writes run again (freeze with holdMs). */
  release(conn: number): object
  read(conn: number, first: number, count: number): Promise<Buffer>
  complete(conn: number, ok: boolean): Promise<object>
  /** The blocks not on the replica yet (active | in-flight), read-only (`vdrep verify`). */
  pending(): {body: object; bitmap: Bitmap}
  /** A change of the record (beginCommit, commit, indexRun, provedSync, ...): the tracker owns it. */
  transition(conn: number, req: RecordRequest, data: Buffer): Promise<object>
  /** The connection is gone (with or without `complete`). */
  disconnected(conn: number): void
}

export interface ControlServerOptions {
  log?: (level: 'warn' | 'info', line: string) => void
}

export class ControlServer {
  private readonly sockets = new Set<net.Socket>()
  private readonly refused = new Set<net.Socket>()
  private nextId = 1

  private constructor(
    readonly path: string,
    private readonly server: net.Server,
    private readonly handler: ControlHandler,
    private readonly opts: ControlServerOptions,
  ) {}

  get clientCount(): number {
    return this.sockets.size
  }

  static async listen(socketPath: string, handler: ControlHandler, opts: ControlServerOptions = {}): Promise<ControlServer> {
    await fs.mkdir(path.dirname(socketPath), {recursive: true, mode: 0o700}).catch(() => {})
    const st = await fs.lstat(socketPath).catch(() => undefined)
    if (st && !st.isSocket()) {
      throw new UsageError('CONTROL_PATH', `${socketPath} exists and is not a socket; vdrep will not replace it`, {hint: 'move that file away'})
    }
    // Stale: we hold the disk's lock, so no live tracker owns it.
    if (st) await fs.unlink(socketPath)
    let self: ControlServer | undefined
    // A client that connects while the socket is being chmod-ed below is served once we are
    // ready: dropped on the floor, it waited forever for a reply (a status poll at start did).
    const early: net.Socket[] = []
    const server = net.createServer((s) => (self ? self.accept(s) : early.push(s)))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({path: socketPath}, () => {
        server.off('error', reject)
        resolve()
      })
    }).catch((err: Error) => {
      throw new UsageError('CONTROL_LISTEN', `cannot create the control socket ${socketPath}: ${err.message}`, {cause: err})
    })
    await fs.chmod(socketPath, 0o600)
    self = new ControlServer(socketPath, server, handler, opts)
    for (const s of early.splice(0)) self.accept(s)
    server.on('error', (err) => opts.log?.('warn', `control socket error: ${err.message}`))
    return self
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const s of [...this.sockets, ...this.refused]) s.destroy()
    await closed
    await fs.rm(this.path, {force: true})
  }

  private accept(socket: net.Socket): void {
    const id = this.nextId++
    const uid = peerUid(socket)
    const own = process.getuid?.() ?? 0
    // Without the addon the peer's uid is unknown; the socket's 0600 mode is the guard then.
    const allowed = uid === undefined ? !nativeAvailable : uid === own || uid === 0
    if (!allowed || this.sockets.size >= MAX_CLIENTS) {
      const message = allowed
        ? `the tracker already serves ${MAX_CLIENTS} control connections`
        : `uid ${uid ?? 'unknown'} may not use this tracker's control socket (only uid ${own} and root may)`
      this.opts.log?.('warn', `control: refused a connection: ${message}`)
      // Read and drop what it sends, so its hang-up is seen and the socket really closes.
      this.refused.add(socket)
      socket.on('close', () => this.refused.delete(socket))
      socket.on('error', () => {})
      socket.resume()
      socket.end(Buffer.concat(encodeFrame(FrameKind.ERROR, errorBody(new UsageError('CONTROL_DENIED', message)))))
      setTimeout(() => socket.destroy(), 1000).unref()
      return
    }
    this.sockets.add(socket)
    socket.on('error', () => {}) // the reader sees the failure
    void this.serve(id, socket).finally(() => {
      this.sockets.delete(socket)
      socket.destroy()
      try {
        this.handler.disconnected(id)
      } catch {
        // a failing handler must not take the server down
      }
    })
  }

  private async serve(id: number, socket: net.Socket): Promise<void> {
    const reader = new SocketReader(socket)
    for (;;) {
      let header
      try {
        header = decodeHeader(await reader.read(CONTROL_HEADER_SIZE), 'client')
      } catch (err) {
        if (err instanceof PeerGoneError) return // hung up
        this.send(socket, FrameKind.ERROR, errorBody(asVdrepError(err)))
        socket.end()
        return
      }
      let body: Buffer
      let data: Buffer
      try {
        body = await reader.read(header.jsonLength)
        // Bounded by decodeHeader (MAX_REQUEST_DATA); read even when the request is refused below,
        // so the framing holds. Copied: the reader's buffer is reused.
        data = header.dataLength > 0 ? Buffer.from(await reader.read(header.dataLength)) : Buffer.alloc(0)
      } catch {
        return
      }
      let req: ControlRequest
      try {
        req = parseRequest(decodeJson(body), header.dataLength)
      } catch (err) {
        this.send(socket, FrameKind.ERROR, errorBody(asVdrepError(err)))
        continue
      }
      try {
        await this.handle(id, socket, req, data)
      } catch (err) {
        this.send(socket, FrameKind.ERROR, errorBody(asVdrepError(err)))
      }
    }
  }

  private async handle(id: number, socket: net.Socket, req: ControlRequest, data: Buffer): Promise<void> {
    switch (req.op) {
      case 'status':
        return this.send(socket, FrameKind.REPLY, {...this.handler.status(), controlClients: this.sockets.size})
      case 'freeze': {
        const {body, bitmap} = await this.handler.freeze(id, req.preserve, req.holdMs)
        return this.send(socket, FrameKind.REPLY, body, Buffer.from(bitmap.bits.buffer, bitmap.bits.byteOffset, bitmap.bits.byteLength))
      }
      case 'release':
        return this.send(socket, FrameKind.REPLY, this.handler.release(id))
      case 'read': {
        const data = await this.handler.read(id, req.first, req.count)
        return this.send(socket, FrameKind.REPLY, {first: req.first, count: req.count, length: data.length}, data)
      }
      case 'complete':
        return this.send(socket, FrameKind.REPLY, await this.handler.complete(id, req.ok))
      case 'pending': {
        const {body, bitmap} = this.handler.pending()
        return this.send(socket, FrameKind.REPLY, body, Buffer.from(bitmap.bits.buffer, bitmap.bits.byteOffset, bitmap.bits.byteLength))
      }
      default:
        return this.send(socket, FrameKind.REPLY, await this.handler.transition(id, req, data))
    }
  }

  private send(socket: net.Socket, kind: (typeof FrameKind)[keyof typeof FrameKind], body: object, data?: Buffer): void {
    if (socket.destroyed || !socket.writable) return
    socket.cork()
    for (const part of encodeFrame(kind, body, data)) socket.write(part)
    socket.uncork()
  }
}

/** The exit code rides along for older clients; a client reads the code (see RemoteError). */
function errorBody(e: VdrepError): object {
  return {code: e.code, exitCode: e.exitCode, message: e.message, ...(e.hint ? {hint: e.hint} : {})}
}
