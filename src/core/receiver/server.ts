// The receiver as a network service (`vdrep serve`): TCP listeners on 127.0.0.1 only, one
// per port, each accepting the sync modes of its port (full sync on 31031, delta on 44046).
//
// The loopback ports grant nothing by themselves: a connection is served only when the
// socket at its other end belongs to the receiver's own uid (peerUid reads the owner from
// /proc/net/tcp). sshd opens a direct-tcpip tunnel from the logged-in user's session
// process, so only someone who can log in over SSH as the receiver's user gets through;
// another local user's process is refused and never reaches the protocol.
//
// One writer per replica: an in-process claim (session.ts) and an flock on
// `<replica>.vdrep.lock`, so two receiver processes cannot both write one replica. The lock is
// taken here, before the session starts, by peeking the HELLO through the session's frame
// reader (its bytes stay there for the session). Each session ends in one log line. stop() stops accepting, gives
// running sessions a grace period, then cuts them: an interrupted full sync keeps the
// resume point of its last checkpoint and stays marked incomplete.
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {asVdrepError, ExitCode, LockError, UsageError, VdrepError} from '../errors.js'
import {flockIsAdvisoryOnly, peerUid} from '../disk/native.js'
import {decodeFrameHeader, FRAME_HEADER_SIZE, FrameType, PROTOCOL_VERSION} from '../protocol/frame.js'
import {FrameReader} from '../protocol/frame-reader.js'
import {FrameWriter} from '../protocol/frame-writer.js'
import {decodeHello, encodeError, SyncMode, type Hello} from '../protocol/messages.js'
import {recoverJournal} from '../delta/apply.js'
import {journalPathFor} from '../delta/journal.js'
import {resolveReplicaPath} from './replica-path.js'
import {lockReplicaFile} from './replica-locks.js'
import {LOOPBACK} from './serve-config.js'
import {SocketReader} from '../transport/socket-reader.js'
import {handleConnection} from './session.js'

export interface ListenerSpec {
  port: number
  /** SyncMode values served on this port. */
  modes: number[]
}

export interface ReceiverServerOptions {
  root: string
  /** Must be 127.0.0.1. */
  listen?: string
  listeners: ListenerSpec[]
  idleTimeoutMs?: number
  /** The uid whose sockets may connect. Default: this process's uid. */
  allowedUid?: number
  log?: (line: string) => void
}

interface Running {
  socket: net.Socket
  done: Promise<void>
}

const MODE_NAMES: Record<number, string> = {[SyncMode.FULLSYNC]: 'fullsync', [SyncMode.DELTA]: 'delta'}

export class ReceiverServer {
  private readonly servers: net.Server[] = []
  private readonly running = new Map<number, Running>()
  private readonly locked = new Set<string>()
  private seq = 0
  private stopping = false
  private readonly log: (line: string) => void
  readonly allowedUid: number

  private constructor(private readonly opts: ReceiverServerOptions) {
    this.log = opts.log ?? (() => {})
    this.allowedUid = opts.allowedUid ?? process.getuid?.() ?? -1
  }

  /** Check the root and the address, then listen on every port; rejects if any port fails. */
  static async start(opts: ReceiverServerOptions): Promise<ReceiverServer> {
    const listen = opts.listen ?? LOOPBACK
    if (listen !== LOOPBACK && listen !== 'localhost') {
      throw new UsageError('LISTEN_NOT_LOOPBACK', `vdrep serve listens on ${LOOPBACK} only, not on ${listen}`, {
        hint: 'clients reach the receiver through SSH tunnels to 127.0.0.1; nothing should listen on another interface',
      })
    }
    const st = await fs.promises.stat(opts.root).catch(() => undefined)
    if (!st?.isDirectory()) throw new UsageError('ROOT_MISSING', `the receiver root ${opts.root} is not a directory`, {hint: 'create it, or point --root or the config file at the folder replicas go under'})
    const ports = opts.listeners.map((l) => l.port)
    if (new Set(ports).size !== ports.length) throw new UsageError('BAD_PORT', `the receiver ports must differ (got ${ports.join(', ')})`)
    const server = new ReceiverServer(opts)
    if (flockIsAdvisoryOnly) server.log('warning: the native addon is missing, so replicas are locked against other clients of this receiver only, not against other receiver processes')
    await server.recoverJournals()
    try {
      for (const spec of opts.listeners) {
        const srv = await server.listenOn(spec)
        server.servers.push(srv)
        server.ports.push((srv.address() as net.AddressInfo).port)
      }
    } catch (err) {
      await server.stop(0)
      throw err
    }
    return server
  }

  /** The ports actually bound (useful when a port was 0). */
  readonly ports: number[] = []

  get activeSessions(): number {
    return this.running.size
  }

  private listenOn(spec: ListenerSpec): Promise<net.Server> {
    return new Promise((resolve, reject) => {
      // Paused: a session takes the socket over before anything is read (SocketReader.adopt).
      const srv = net.createServer({noDelay: true, pauseOnConnect: true}, (socket) => this.accept(socket, spec))
      srv.once('error', (err: NodeJS.ErrnoException) => {
        const inUse = err.code === 'EADDRINUSE'
        reject(new VdrepError(inUse ? 'PORT_IN_USE' : 'LISTEN_FAILED', ExitCode.FAILURE, `cannot listen on ${LOOPBACK}:${spec.port}: ${inUse ? 'something already listens there' : err.message}`, {
          cause: err,
          hint: inUse ? 'another vdrep serve may already run (check with: ss -ltnp); or choose other ports with --fullsync-port/--delta-port' : undefined,
        }))
      })
      srv.listen({host: LOOPBACK, port: spec.port, exclusive: true}, () => {
        srv.removeAllListeners('error')
        srv.on('error', (err) => this.log(`listener on port ${spec.port}: ${err.message}`))
        resolve(srv)
      })
    })
  }

  private accept(socket: net.Socket, spec: ListenerSpec): void {
    const id = ++this.seq
    socket.on('error', () => {}) // a reset peer: the session sees the close
    if (this.stopping) {
      socket.destroy()
      return
    }
    const uid = peerUid(socket)
    if (uid === undefined || uid !== this.allowedUid) {
      const who = uid === undefined ? 'an unknown uid' : `uid ${uid}`
      this.log(`session ${id} port ${spec.port}: refused a connection from ${socket.remoteAddress}:${socket.remotePort} owned by ${who}; only uid ${this.allowedUid} (the receiver's user, logged in over SSH) may connect`)
      refuse(socket, new VdrepError('PEER_REFUSED', ExitCode.TRANSPORT, `the receiver accepts connections only from its own user (uid ${this.allowedUid}); this one came from ${who}`, {
        hint: 'log in over SSH as the user vdrep serve runs as (the target\'s user@ part)',
      }))
      return
    }
    // Reads land in recycled memory where Node allows it; else the socket is read as a stream.
    const adopted = SocketReader.adopt(socket)
    if (adopted) adopted.socket.on('error', () => {})
    const s = adopted?.socket ?? socket
    const reader = new FrameReader(adopted?.reader ?? s, this.opts.idleTimeoutMs ?? 0)
    const done = this.session(id, s, spec, uid, reader).finally(() => this.running.delete(id))
    this.running.set(id, {socket: s, done})
  }

  private async session(id: number, socket: net.Socket, spec: ListenerSpec, uid: number, reader: FrameReader): Promise<void> {
    const started = performance.now()
    const lines: string[] = []
    let what = `port ${spec.port}`
    let release: (() => void) | undefined
    try {
      const peek = await peekHello(reader)
      if (peek.ended) {
        lines.push(peek.bytes.length === 0 ? 'closed without a hello' : 'closed inside the hello')
        socket.destroy()
        return
      }
      const hello = peek.hello
      if (hello && hello.version === PROTOCOL_VERSION && spec.modes.includes(hello.mode)) {
        // A path the session will refuse is left for it to refuse (with its own reason).
        const replica = await resolveReplicaPath(this.opts.root, hello.path).catch(() => undefined)
        if (replica !== undefined) {
          what = `${MODE_NAMES[hello.mode] ?? `mode ${hello.mode}`} ${replica}`
          release = this.lockReplica(replica)
        }
      }
      // The peeked bytes are still in the reader, which the session reads from.
      const served = handleConnection(socket, {
        root: this.opts.root, modes: spec.modes, idleTimeoutMs: this.opts.idleTimeoutMs, log: (l) => lines.push(l),
        // Not locked here (the path did not resolve when peeked: a folder made since, say): the
        // session, which resolves it again, takes the lock itself, so no session runs unlocked.
        lockAcrossProcesses: release === undefined,
        reader,
      })
      await served
    } catch (err) {
      const e = asVdrepError(err)
      lines.push(`refused: ${e.code}: ${e.message}`)
      refuse(socket, e)
    } finally {
      release?.()
      if (!socket.destroyed) {
        socket.end()
        setTimeout(() => socket.destroy(), 5_000).unref()
      }
      const secs = ((performance.now() - started) / 1000).toFixed(1)
      const said = lines.map((l) => (l.startsWith(`${what}: `) ? l.slice(what.length + 2) : l)).join('; ')
      this.log(`session ${id} port ${spec.port} uid ${uid}: ${what}: ${said || 'ended'} (${secs} s)`)
    }
  }

  /**
   * A receiver killed between "journal complete" and "applied" leaves a replica half applied
   * until the journal is replayed. Replay (or discard) every journal under the root before
   * serving, so the replica is at the old point or the new one as soon as the receiver is back,
   * not only once the next push arrives. A replica another receiver process is writing is left
   * to that one.
   */
  private async recoverJournals(): Promise<void> {
    const suffix = journalPathFor('')
    for (const journal of await findFiles(this.opts.root, suffix)) {
      let release: (() => void) | undefined
      try {
        const replica = await resolveReplicaPath(this.opts.root, path.relative(this.opts.root, journal.slice(0, -suffix.length)))
        release = this.lockReplica(replica)
        const outcome = await recoverJournal(replica)
        if (outcome !== 'none') this.log(`${replica}: journal ${outcome} at start`)
      } catch (err) {
        this.log(`${journal}: not recovered at start (the next push will): ${asVdrepError(err).message}`)
      } finally {
        release?.()
      }
    }
  }

  /** One writer per replica, in this process and across receiver processes. */
  private lockReplica(replica: string): () => void {
    if (this.locked.has(replica)) throw new LockError(`another client is writing ${replica} through this receiver`, {hint: 'wait for it to finish'})
    const unlock = lockReplicaFile(replica, 'another vdrep process (a receiver, or a local full sync or push)')
    this.locked.add(replica)
    return () => {
      this.locked.delete(replica)
      unlock()
    }
  }

  /**
   * Stop accepting; let running sessions finish for up to `graceMs`, then cut them (a full
   * sync stays incomplete and resumes from its last checkpoint). Resolves when all are gone.
   */
  async stop(graceMs = 5_000): Promise<{finished: number; aborted: number}> {
    this.stopping = true
    const closed = this.servers.map((s) => new Promise<void>((r) => s.close(() => r())))
    const pending = [...this.running.values()]
    let aborted = 0
    if (pending.length > 0) {
      this.log(`stopping: ${pending.length} session(s) running, waiting up to ${Math.round(graceMs / 1000)} s`)
      let timer: NodeJS.Timeout | undefined
      await Promise.race([Promise.all(pending.map((r) => r.done)), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))])
      clearTimeout(timer)
      // Between two frames (socket writes are whole frames), tell each client why, then hang up.
      const why = new VdrepError('RECEIVER_STOPPING', ExitCode.TRANSPORT, 'the receiver on the replica host is shutting down; the replica stays marked incomplete and the next run resumes from its last checkpoint', {
        hint: 'run the command again once vdrep serve is back (auto-start or systemd starts it)',
      })
      for (const r of this.running.values()) {
        aborted++
        refuse(r.socket, why)
      }
      await Promise.all(pending.map((r) => r.done))
    }
    await Promise.all(closed)
    return {finished: pending.length - aborted, aborted}
  }
}

/** Regular files under `dir` whose names end with `suffix`; symlinks are not followed. */
async function findFiles(dir: string, suffix: string): Promise<string[]> {
  const out: string[] = []
  let entries: fs.Dirent[]
  try {
    entries = await fs.promises.readdir(dir, {withFileTypes: true})
  } catch {
    return out
  }
  for (const e of entries) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...(await findFiles(p, suffix)))
    else if (e.isFile() && e.name.endsWith(suffix)) out.push(p)
  }
  return out
}

/** Tell the peer why (an ERROR frame), then hang up. */
function refuse(socket: net.Socket, e: VdrepError): void {
  if (socket.destroyed) return
  const writer = new FrameWriter(socket)
  writer.send(FrameType.ERROR, encodeError({exitCode: e.exitCode, code: e.code, message: e.message, hint: e.hint ?? ''})).catch(() => {})
  socket.end()
  setTimeout(() => socket.destroy(), 2_000).unref()
}

/**
 * Read the first frame ahead, without consuming it: the bytes stay in the reader for the
 * session. Stops at the end of the first frame (or at a header that does not decode, which
 * the session will refuse).
 */
async function peekHello(reader: FrameReader): Promise<Peeked> {
  try {
    const head = await reader.peek(FRAME_HEADER_SIZE)
    if (head.length < FRAME_HEADER_SIZE) return {bytes: head, ended: true}
    let length: number
    try {
      const h = decodeFrameHeader(head)
      if (h.type !== FrameType.HELLO) return {bytes: head, ended: false}
      length = h.length
    } catch {
      return {bytes: head, ended: false} // the session refuses it, with its reason
    }
    const all = await reader.peek(FRAME_HEADER_SIZE + length)
    if (all.length < FRAME_HEADER_SIZE + length) return {bytes: all, ended: true}
    let hello: Hello | undefined
    try {
      hello = decodeHello(all.subarray(FRAME_HEADER_SIZE))
    } catch {
      hello = undefined
    }
    return {bytes: all, hello, ended: false}
  } catch (err) {
    if ((err as {code?: string}).code === 'IDLE_TIMEOUT') return {bytes: Buffer.alloc(0), ended: true}
    throw err
  }
}

interface Peeked {
  /** The bytes peeked (still in the reader, for the session). */
  bytes: Buffer
  /** The decoded HELLO, when the first frame is one and decodes. */
  hello?: Hello
  /** The peer closed (or went idle) before a whole first frame arrived. */
  ended: boolean
}
