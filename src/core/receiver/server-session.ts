// One accepted connection of `vdrep serve`, from the peeked HELLO to its log line: peek the
// first frame, lock the replica it names (one writer per replica, across receiver processes),
// hand the connection to the protocol session (session.ts), and log one line when it ends. Also
// the one way the server turns a connection away: an ERROR frame that says why, then hang up.
import {trace} from '../util/trace.js'
import type net from 'node:net'
import type {VdrepError} from '../errors.js'
import {errorFrameFields, receiverErrorOf} from './receiver-error.js'
import {sessionLine, type FieldLog} from './session-log.js'
import {FrameType, PROTOCOL_VERSION} from '../protocol/frame.js'
import {FrameWriter} from '../protocol/frame-writer.js'
import type {FrameReader} from '../protocol/frame-reader.js'
import {encodeError, HelloFlag, SyncMode} from '../protocol/messages.js'
import type {ReplicaLockOptions} from '../locks/index.js'
import {peekHello} from './hello-peek.js'
import {resolveReplicaPath} from './replica-path.js'
import {handleConnection} from './session.js'

const MODE_NAMES: Record<number, string> = {[SyncMode.FULLSYNC]: 'fullsync', [SyncMode.DELTA]: 'delta', [SyncMode.POINTS]: 'points'}

export interface SessionContext {
  root: string
  idleTimeoutMs?: number
  /** The server's one-writer lock on a replica (throws LockError when held); returns its release. */
  lockReplica: (replica: string, opts?: ReplicaLockOptions) => Promise<() => void>
  /** The receiver's own files (its log, its config): refused as replica paths. */
  receiverFiles?: readonly string[]
  log: FieldLog
}

export interface Connection {
  id: number
  socket: net.Socket
  port: number
  /** SyncMode values served on this port. */
  modes: number[]
  /** The peer's uid (already checked by the server). */
  uid: number
  /** The session's frame reader (over the adopted socket where the server could adopt it). */
  reader: FrameReader
}

export async function serveConnection(ctx: SessionContext, conn: Connection): Promise<void> {
  const {socket, reader} = conn
  const started = performance.now()
  const lines: string[] = []
  let what = `port ${conn.port}`
  let release: (() => void) | undefined
  let held: string | undefined
  let seq: number | undefined
  try {
    trace('serve: connection')
    const peek = await peekHello(reader)
    trace('serve: HELLO')
    if (peek.ended) {
      lines.push(peek.bytes.length === 0 ? 'closed without a hello' : 'closed inside the hello')
      socket.destroy()
      return
    }
    const hello = peek.hello
    if (hello && hello.version === PROTOCOL_VERSION && conn.modes.includes(hello.mode)) {
      // A path the session will refuse is left for it to refuse (with its own reason).
      const replica = await resolveReplicaPath(ctx.root, hello.path, ctx.receiverFiles).catch(() => undefined)
      if (replica !== undefined) {
        what = `${MODE_NAMES[hello.mode] ?? `mode ${hello.mode}`} ${replica}`
        // A points query reads without the lock (it never waits for a push nor holds one up);
        // a compare-only session (NO_WRITE) makes no lock file where none exists.
        if (hello.mode !== SyncMode.POINTS) {
          release = await ctx.lockReplica(replica, {create: !(hello.flags & HelloFlag.NO_WRITE)})
          held = replica
        }
      }
    }
    const served = handleConnection(socket, {
      root: ctx.root,
      modes: conn.modes,
      idleTimeoutMs: ctx.idleTimeoutMs,
      receiverFiles: ctx.receiverFiles,
      // The session line below names `what` already: a line about it adds only its text.
      log: (text, subject, fields) => {
        if (fields?.seq !== undefined) seq = fields.seq
        lines.push(subject === what ? text : sessionLine(text, subject))
      },
      // The replica locked above is the held one; any other this session resolves to (the path
      // did not resolve when peeked, or resolves elsewhere now: a folder changed since) it locks
      // itself, claim and cross-process lock both, so no session writes a replica unlocked.
      lockAcrossProcesses: true,
      heldReplica: held,
      // The peeked bytes are still in the reader, which the session reads from.
      reader,
    })
    await served
  } catch (err) {
    const e = receiverErrorOf(err)
    lines.push(`refused: ${e.code}: ${e.message}`)
    refuse(socket, e)
  } finally {
    release?.()
    if (!socket.destroyed) {
      socket.end()
      setTimeout(() => socket.destroy(), 5_000).unref()
    }
    const secs = ((performance.now() - started) / 1000).toFixed(1)
    const said = lines.join('; ')
    ctx.log(`session ${conn.id} port ${conn.port} uid ${conn.uid}: ${what}: ${said || 'ended'} (${secs} s)`, {
      ...(held !== undefined ? {disk: held} : {}),
      uid: conn.uid,
      session: conn.id,
      ...(seq !== undefined ? {seq} : {}),
    })
  }
}

/** Tell the peer why (an ERROR frame), then hang up. */
export function refuse(socket: net.Socket, e: VdrepError): void {
  if (socket.destroyed) return
  const writer = new FrameWriter(socket)
  writer.send(FrameType.ERROR, encodeError(errorFrameFields(e))).catch(() => {})
  socket.end()
  setTimeout(() => socket.destroy(), 2_000).unref()
}
