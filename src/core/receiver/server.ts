// The receiver as a network service (`vdrep serve`): TCP listeners on 127.0.0.1 only, one
// per port, each accepting the sync modes of its port (full sync on 31031, delta on 44046).
//
// The loopback ports grant nothing by themselves: a connection is served only when the
// socket at its other end belongs to the receiver's own uid (peerUid asks the kernel's
// sock_diag for the owner of the live peer socket, O(1); a peer already gone is refused). sshd opens a direct-tcpip tunnel from the logged-in user's session
// process, so only someone who can log in over SSH as the receiver's user gets through;
// another local user's process is refused and never reaches the protocol. Connections are
// capped in total and per uid (connection-caps.ts): over the total cap a socket is closed
// before any lookup; refusals are logged as counts, not one line each.
//
// One writer per replica: an in-process claim (session.ts) and an flock on
// `<replica>.vdrep.lock`, so two receiver processes cannot both write one replica. The lock is
// taken (lockReplica, here) before the session starts, by reading the HELLO ahead
// (server-session.ts). stop() stops accepting, gives running sessions a grace period, then
// cuts them: an interrupted full sync keeps the resume point of its last checkpoint and stays
// marked incomplete.
//
// This file is the server's life: listening, the peer check, shutdown. One connection's way
// from its HELLO to its log line is server-session.ts; the journal replay before listening is
// startup-recovery.ts.
import fs from 'node:fs'
import net from 'node:net'
import {UsageError, VdrepError} from '../errors.js'
import {peerUid} from '../native/peer-credentials.js'
import {FrameReader} from '../protocol/frame-reader.js'
import {SocketReader} from '../transport/socket-reader.js'
import {acquireReplica, kernelLocksInUse, type ReplicaLockOptions} from '../locks/index.js'
import {IdleTrim} from './idle-trim.js'
import {ConnectionCaps, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_UID} from './connection-caps.js'
import {LOOPBACK} from './serve-config.js'
import {refuse, serveConnection} from './server-session.js'
import {recoverJournalsUnder} from './startup-recovery.js'
import type {FieldLog} from './session-log.js'

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
  log?: FieldLog
  /** The receiver's own files (its log file, its config file): refused as replica paths. */
  receiverFiles?: readonly string[]
  /** Sockets open at once, refused ones included (default 64). */
  maxConnections?: number
  /** Sessions served at once for one uid (default 16). */
  maxConnectionsPerUid?: number
}

interface Running {
  socket: net.Socket
  done: Promise<void>
}

export class ReceiverServer {
  private readonly servers: net.Server[] = []
  private readonly running = new Map<number, Running>()
  /** Collects and trims once no session has run for a moment (idle-trim.ts). */
  private readonly idle = new IdleTrim(() => this.running.size)
  private seq = 0
  private stopping = false
  private readonly log: FieldLog
  readonly allowedUid: number
  readonly caps: ConnectionCaps

  private constructor(private readonly opts: ReceiverServerOptions) {
    this.log = opts.log ?? (() => {})
    this.allowedUid = opts.allowedUid ?? process.getuid?.() ?? -1
    this.caps = new ConnectionCaps(
      {maxConnections: opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS, maxConnectionsPerUid: opts.maxConnectionsPerUid ?? DEFAULT_MAX_CONNECTIONS_PER_UID},
      this.log,
    )
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
    if (!st?.isDirectory())
      throw new UsageError('ROOT_MISSING', `the receiver root ${opts.root} is not a directory`, {
        hint: 'create it, or point --root or the config file at the folder replicas go under',
      })
    const ports = opts.listeners.map((l) => l.port)
    if (new Set(ports).size !== ports.length) throw new UsageError('BAD_PORT', `the receiver ports must differ (got ${ports.join(', ')})`)
    const server = new ReceiverServer(opts)
    if (!kernelLocksInUse())
      server.log(
        'warning: the native addon is missing, so replicas are locked through abstract unix sockets: they exclude other vdrep processes of this network namespace only, and only ones that also run without the addon',
      )
    await recoverJournalsUnder(opts.root, (replica) => server.lockReplica(replica), server.log)
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
        reject(
          new VdrepError(
            inUse ? 'PORT_IN_USE' : 'LISTEN_FAILED',
            `cannot listen on ${LOOPBACK}:${spec.port}: ${inUse ? 'something already listens there' : err.message}`,
            {
              cause: err,
              hint: inUse ? 'another vdrep serve may already run (check with: ss -ltnp); or choose other ports with --fullsync-port/--delta-port' : undefined,
            },
          ),
        )
      })
      srv.listen({host: LOOPBACK, port: spec.port, exclusive: true}, () => {
        srv.removeAllListeners('error')
        srv.on('error', (err) => this.log(`listener on port ${spec.port}: ${err.message}`))
        resolve(srv)
      })
    })
  }

  private accept(socket: net.Socket, spec: ListenerSpec): void {
    // Over the total cap: closed before any lookup, read or log line (counted, reported later).
    if (this.stopping || !this.caps.admit()) {
      socket.destroy()
      return
    }
    socket.on('error', () => {}) // a reset peer: the session sees the close
    const id = ++this.seq
    const uid = peerUid(socket)
    if (uid === undefined || uid !== this.allowedUid) {
      // Another user's (or a gone peer's) connection: one kernel lookup, then closed; a log
      // line at most once per interval (the others are counted in the next one).
      const who = uid === undefined ? 'an unknown uid (the peer socket is gone or held by no process)' : `uid ${uid}`
      this.caps.refusedPeer(
        () =>
          `session ${id} port ${spec.port}: refused a connection from ${socket.remoteAddress}:${socket.remotePort} owned by ${who}; only uid ${this.allowedUid} (the receiver's user, logged in over SSH) may connect`,
      )
      refuse(
        socket,
        new VdrepError('PEER_REFUSED', `the receiver accepts connections only from its own user (uid ${this.allowedUid}); this one came from ${who}`, {
          hint: "log in over SSH as the user vdrep serve runs as (the target's user@ part)",
        }),
      )
      closeWhenSent(socket, () => this.caps.closed())
      return
    }
    if (!this.caps.startSession(uid)) {
      refuse(
        socket,
        new VdrepError('RECEIVER_BUSY', `the receiver already serves ${this.caps.limits.maxConnectionsPerUid} connections for uid ${uid}, its cap per user`, {
          hint: 'wait for running pushes and full syncs to finish, or raise maxConnectionsPerUid in the receiver config (vdrep-serve(1))',
        }),
      )
      closeWhenSent(socket, () => this.caps.closed())
      return
    }
    // Reads land in recycled memory where Node allows it; else the socket is read as a stream.
    const adopted = SocketReader.adopt(socket)
    if (adopted) adopted.socket.on('error', () => {})
    else socket.resume()
    const s = adopted?.socket ?? socket
    const ctx = {
      root: this.opts.root,
      receiverFiles: this.opts.receiverFiles,
      idleTimeoutMs: this.opts.idleTimeoutMs,
      lockReplica: (replica: string, lockOpts?: ReplicaLockOptions) => this.lockReplica(replica, lockOpts),
      log: this.log,
    }
    const reader = new FrameReader(adopted?.reader ?? s, this.opts.idleTimeoutMs ?? 0)
    const done = serveConnection(ctx, {id, socket: s, port: spec.port, modes: spec.modes, uid, reader}).finally(() => {
      this.running.delete(id)
      this.caps.endSession(uid)
      this.caps.closed() // the session owns the socket (adopted, it is another object) to its end
      this.idle.sessionEnded()
    })
    this.running.set(id, {socket: s, done})
  }

  /** One writer per replica, in this process and across receiver processes (locks/replica-lock.ts). */
  private lockReplica(replica: string, lockOpts?: ReplicaLockOptions): Promise<() => void> {
    return acquireReplica(replica, 'another vdrep process (a receiver, or a local full sync or push)', lockOpts)
  }

  /**
   * Stop accepting; let running sessions finish for up to `graceMs`, then cut them (a full
   * sync stays incomplete and resumes from its last checkpoint). Resolves when all are gone.
   */
  async stop(graceMs = 5_000): Promise<{finished: number; aborted: number}> {
    this.stopping = true
    this.idle.cancel()
    const closed = this.servers.map((s) => new Promise<void>((r) => s.close(() => r())))
    const pending = [...this.running.values()]
    let aborted = 0
    if (pending.length > 0) {
      this.log(`stopping: ${pending.length} session(s) running, waiting up to ${Math.round(graceMs / 1000)} s`)
      let timer: NodeJS.Timeout | undefined
      await Promise.race([Promise.all(pending.map((r) => r.done)), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))])
      clearTimeout(timer)
      // Between two frames (socket writes are whole frames), tell each client why, then hang up.
      const why = new VdrepError(
        'RECEIVER_STOPPING',
        'the receiver on the replica host is shutting down; the replica stays marked incomplete and the next run resumes from its last checkpoint',
        {
          hint: 'run the command again once vdrep serve is back (auto-start or systemd starts it)',
        },
      )
      const cut = [...this.running.values()].map((r) => r.socket)
      for (const socket of cut) {
        aborted++
        refuse(socket, why)
      }
      await Promise.all(pending.map((r) => r.done))
      // A cut socket is ended but nothing reads it any more, so the peer's FIN is never seen and
      // it never closes; its destroy timers are unref'd. Left so, the servers' close below waited
      // on sockets that kept nothing alive, and node left with 13 (an unsettled top-level await)
      // instead of 0. Each goes once its ERROR frame is handed to the kernel, within 2 s.
      await Promise.all(cut.map((socket) => destroyWhenFlushed(socket, 2_000)))
    }
    await Promise.all(closed)
    return {finished: pending.length - aborted, aborted}
  }
}

/** Destroy `socket` once what it was given is handed to the kernel, or after `ms` at the most. */
function destroyWhenFlushed(socket: net.Socket, ms: number): Promise<void> {
  if (socket.destroyed) return Promise.resolve()
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer)
      socket.destroy()
      resolve()
    }
    const timer = setTimeout(done, ms)
    if (socket.writableFinished) done()
    else {
      socket.once('finish', done)
      socket.once('close', done)
    }
  })
}

/**
 * A refused socket is closed as soon as its error frame is handed to the kernel: it is
 * paused (nothing reads the peer's FIN), so waiting for the peer would keep it, and its
 * slot under the total cap, for the 2 s of refuse()'s backstop.
 */
function closeWhenSent(socket: net.Socket, closed: () => void): void {
  socket.once('close', closed)
  socket.once('finish', () => socket.destroy())
}
