// One client connection to the receiver: read HELLO, check it, resolve the replica under
// the root, claim it, run the session for its mode. Any failure goes back to the client as
// an ERROR frame (code, message, hint, exit code) before the stream is closed.
import type {Duplex} from 'node:stream'
import {ProtocolError, UsageError} from '../errors.js'
import {errorFrameFields, receiverErrorOf} from './receiver-error.js'
import {isKnownHashAlgo} from '../hash/block-hash.js'
import {validBlockSize} from '../psf/header.js'
import {FrameType, PROTOCOL_VERSION} from '../protocol/frame.js'
import {FrameReader, type FrameSource} from '../protocol/frame-reader.js'
import {DecompressingSource, helloOkCodec} from '../compress/decompress-source.js'
import {codecName} from '../compress/codec.js'
import {FrameWriter} from '../protocol/frame-writer.js'
import {decodeHello, encodeError, HelloFlag, KNOWN_HELLO_FLAGS, SyncMode, type Hello} from '../protocol/messages.js'
import {runReprotectSession} from '../failover/reprotect-receiver.js'
import {runDeltaSession} from '../delta/receiver.js'
import {runFullsyncSession} from '../fullsync/receiver.js'
import {runPointsSession} from './points-session.js'
import {acquireReplica, claimReplica} from '../locks/index.js'
import {resolveReplicaPath} from './replica-path.js'
import {startKeepalives} from './keepalive-pump.js'
import type {SessionLog} from './session-log.js'

export interface ReceiverOptions {
  /** Replicas are written only under this directory. */
  root: string
  /** Modes this listener accepts (the full-sync port and the delta port differ). */
  modes?: number[]
  /** No byte from the client for this long frees the slot. */
  idleTimeoutMs?: number
  log?: SessionLog
  /** Where frames come from when the caller made the reader (`vdrep serve`: a taken-over socket); else read from `stream`. */
  reader?: FrameSource
  /**
   * Also take the replica's cross-process lock (locks/replica-lock.ts). A local target's receiver
   * runs in the client's process and must; `vdrep serve` takes it itself, before the session.
   */
  lockAcrossProcesses?: boolean
  /**
   * The replica the caller already holds (claim and lock: `vdrep serve`, which locks the replica
   * its HELLO names before the session starts). A session for that replica takes neither again.
   */
  heldReplica?: string
  /** The receiver's own files (log, config): never accepted as a replica. */
  receiverFiles?: readonly string[]
  /**
   * The client runs in this very process and thread (a local target's inline receiver): a full
   * sync's DATA bodies are the client's own memory, checksummed as it read them, so they are
   * not checksummed again on arrival. The proof still reads every written block back from the
   * replica and compares it with the checksum its frame carried (fullsync/receiver-proof.ts).
   */
  sameThreadClient?: boolean
  /** Tests only: a KEEPALIVE interval other than KEEPALIVE_INTERVAL_MS. */
  keepaliveIntervalMs?: number
}

/** Largest disk accepted: 2^52 bytes (4 PiB), so every offset is an exact JS number. */
const MAX_DISK_SIZE = 2 ** 52

function checkHello(h: Hello, modes: number[]): void {
  if (h.version !== PROTOCOL_VERSION)
    throw new ProtocolError('VERSION_MISMATCH', `client speaks protocol version ${h.version}; this receiver speaks ${PROTOCOL_VERSION}`, {
      hint: 'install the same vdrep release on both hosts',
    })
  if (!modes.includes(h.mode)) throw new ProtocolError('WRONG_PORT', `mode ${h.mode} is not served on this port`)
  if (!isKnownHashAlgo(h.hashAlgo)) throw new ProtocolError('BAD_HASH', `unknown hash algorithm ${h.hashAlgo}`)
  if (!validBlockSize(h.blockSize)) throw new ProtocolError('BAD_BLOCK_SIZE', `block size ${h.blockSize} is not a power of two between 4 KiB and 4 MiB`)
  if (h.flags & ~KNOWN_HELLO_FLAGS) throw new ProtocolError('BAD_FLAGS', `unknown hello flags 0x${h.flags.toString(16)}`)
  if (h.flags & HelloFlag.NO_WRITE && h.mode !== SyncMode.FULLSYNC) throw new ProtocolError('BAD_FLAGS', 'NO_WRITE (compare only) is a full-sync flag')
  if (h.flags & HelloFlag.GROUP && (h.mode !== SyncMode.DELTA || h.flags & (HelloFlag.REPROTECT | HelloFlag.FINAL)))
    throw new ProtocolError('BAD_FLAGS', 'GROUP is a delta-port flag of a plain push (not with REPROTECT or FINAL)')
  if (h.diskSize <= 0 || h.diskSize > MAX_DISK_SIZE) throw new ProtocolError('BAD_DISK_SIZE', `disk size ${h.diskSize} is out of range`)
}

export async function handleConnection(stream: Duplex, opts: ReceiverOptions): Promise<void> {
  const log = opts.log ?? (() => {})
  const reader = opts.reader ?? new FrameReader(stream, opts.idleTimeoutMs ?? 0)
  const writer = new FrameWriter(stream)
  let release: (() => void) | undefined
  let stopKeepalives: (() => void) | undefined
  let what = 'connection'
  try {
    const first = await reader.next()
    if (!first) return
    if (first.type !== FrameType.HELLO) throw new ProtocolError('FRAME_UNEXPECTED', `expected HELLO, got frame type ${first.type}`)
    const hello = decodeHello(first.payload)
    checkHello(hello, opts.modes ?? [SyncMode.FULLSYNC, SyncMode.DELTA, SyncMode.POINTS])
    // From here on, a lock wait, a journal replay or a scan may outlast the client's timeout.
    if (hello.flags & HelloFlag.KEEPALIVE) stopKeepalives = startKeepalives(writer, opts.keepaliveIntervalMs)
    const replica = await resolveReplicaPath(opts.root, hello.path, opts.receiverFiles)
    what = replica
    // The points query locks nothing (a listing never waits for a push); setting retention locks itself.
    if (replica !== opts.heldReplica && hello.mode !== SyncMode.POINTS) {
      release = opts.lockAcrossProcesses
        ? await acquireReplica(replica, 'another vdrep process (a local full sync or push, or vdrep serve)', {create: !(hello.flags & HelloFlag.NO_WRITE)})
        : claimReplica(replica)
    }
    if (hello.flags & HelloFlag.REPROTECT) {
      if (hello.mode !== SyncMode.DELTA) throw new ProtocolError('BAD_FLAGS', 'REPROTECT is a delta-port hello flag')
      await runReprotectSession(hello, replica, reader, writer, log)
    } else if (hello.mode === SyncMode.FULLSYNC || hello.mode === SyncMode.DELTA) {
      // Compressed runs (DATA_Z) are expanded into DATA before the session sees them, and only when the hello agreed on a codec.
      const codec = helloOkCodec(hello).codec
      const frames = codec ? new DecompressingSource(reader, codec, hello.blockSize, hello.diskSize) : reader
      if (hello.mode === SyncMode.FULLSYNC) await runFullsyncSession(hello, replica, frames, writer, log, {trustBodies: opts.sameThreadClient === true})
      else await runDeltaSession(hello, replica, frames, writer, log, opts.root)
      if (frames instanceof DecompressingSource && frames.stats.runs > 0) {
        const z = frames.stats
        log(`${replica}: ${z.runs} compressed runs (${codecName(codec as number)}): ${z.wireBytes} bytes on the wire for ${z.rawBytes} bytes of blocks`)
      }
    } else if (hello.mode === SyncMode.POINTS) await runPointsSession(hello, replica, reader, writer, log)
    else throw new UsageError('MODE_UNSUPPORTED', `unknown sync mode ${hello.mode}`)
    stopKeepalives?.()
    writer.end()
  } catch (err) {
    // The ERROR is the last frame of a session: no keepalive after it.
    stopKeepalives?.()
    const e = receiverErrorOf(err, what === 'connection' ? undefined : what)
    log(`${what}: refused or failed: ${e.code}: ${e.message}`)
    try {
      await writer.send(FrameType.ERROR, encodeError(errorFrameFields(e)))
    } catch {
      // the connection is already gone; the log line above is all that is left to do
    }
    writer.end()
  } finally {
    release?.()
  }
}
