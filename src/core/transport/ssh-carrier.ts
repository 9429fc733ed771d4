// The carrier over an SSH tunnel (carrier.ts), with what a network needs and the in-process
// carriers do not: the KEEPALIVE agreement and the watchdog behind --timeout.
//
// KEEPALIVE is asked for here, for every session, by setting the hello flag in the HELLO the
// engine sends (the engine's code does not change): a receiver that knows it sends keepalives
// while it works; one that does not (an older vdrep) refuses the flag with BAD_FLAGS, since a
// receiver refuses unknown flags. Then the carrier opens a second tunnel, sends the frames it
// sent so far again, as the engine wrote them, and gives the engine that receiver's answer: the
// engine never sees the refusal, and the watchdog waits LEGACY_TIMEOUT_FACTOR times longer (it
// says so), since that receiver is silent while it applies or proves.
import type {Duplex} from 'node:stream'
import type {TransportError} from '../errors.js'
import {FrameType, type FrameTypeId} from '../protocol/frame.js'
import {FrameReader, type Frame} from '../protocol/frame-reader.js'
import {FrameWriter} from '../protocol/frame-writer.js'
import {decodeError, HELLO_FLAGS_OFFSET, HelloFlag} from '../protocol/messages.js'
import {formatDuration} from '../util/units.js'
import type {Carrier} from './carrier.js'
import type {LogLevel} from '../sync/progress.js'
import {LEGACY_TIMEOUT_FACTOR, PeerWatchdog} from './peer-watchdog.js'

/** Frames sent before the receiver's first answer are kept for a resend up to this size (a HELLO and a request). */
const MAX_RESEND_BYTES = 64 << 10

export interface SshCarrierOptions {
  /** The tunnel, open. */
  stream: Duplex
  replicaPath: string
  /** Opens another tunnel to the same port (for a receiver that refused KEEPALIVE). */
  reopen: () => Promise<Duplex>
  /** Frees the SSH connection once the conversation ended. */
  release: () => Promise<void>
  timeoutMs: number
  /** `user@host:port` of the SSH connection, for messages. */
  label: string
  log?: (line: string, level?: LogLevel) => void
}

interface Sent {
  type: FrameTypeId
  payload: Buffer
}

/** Sets KEEPALIVE in the first HELLO and keeps what it sends until the first answer. */
class AskingWriter extends FrameWriter {
  asked = false
  /** Frames as the engine sent them, until the receiver's first frame; undefined: not kept (settled or too large). */
  kept: Sent[] | undefined = []
  private keptBytes = 0

  override async send(type: FrameTypeId, ...parts: Buffer[]): Promise<void> {
    if (this.kept === undefined) return super.send(type, ...parts)
    const payload = Buffer.concat(parts)
    this.keptBytes += payload.length
    if (this.keptBytes > MAX_RESEND_BYTES) this.kept = undefined
    else this.kept.push({type, payload})
    if (type !== FrameType.HELLO || this.asked || payload.length < HELLO_FLAGS_OFFSET + 4) return super.send(type, payload)
    const asking = Buffer.from(payload)
    asking.writeUInt32LE((asking.readUInt32LE(HELLO_FLAGS_OFFSET) | HelloFlag.KEEPALIVE) >>> 0, HELLO_FLAGS_OFFSET)
    this.asked = true
    return super.send(type, asking)
  }

  override async sendLent(type: FrameTypeId, fields: Buffer, body: Buffer, release: () => void): Promise<void> {
    this.kept = undefined // bulk before the first answer: nothing to resend it from
    return super.sendLent(type, fields, body, release)
  }
}

/** Reads the receiver's first answer and, if it refused KEEPALIVE, asks again without it. */
class AgreeingReader extends FrameReader {
  private settled = false

  constructor(
    stream: Duplex,
    private readonly writer: AskingWriter,
    private readonly refused: (resend: Sent[]) => Promise<void>,
  ) {
    super(stream)
    this.acceptKeepalives = true // only a receiver that agreed sends one
  }

  override async next(): Promise<Frame | null> {
    if (this.settled) return super.next()
    const first = await super.next()
    this.settled = true
    const resend = this.writer.kept
    this.writer.kept = undefined
    if (first?.type !== FrameType.ERROR || !this.writer.asked || resend === undefined || !refusedFlags(first.payload)) return first
    this.acceptKeepalives = false
    await this.refused(resend)
    return super.next()
  }
}

function refusedFlags(payload: Buffer): boolean {
  try {
    return decodeError(payload).code === 'BAD_FLAGS'
  } catch {
    return false // a malformed ERROR is the engine's to refuse
  }
}

export function sshCarrier(opts: SshCarrierOptions): Carrier {
  let stream = opts.stream
  let closed = false
  const writer = new AskingWriter(stream)
  const frames = new AgreeingReader(stream, writer, async (resend) => {
    const legacy = opts.timeoutMs * LEGACY_TIMEOUT_FACTOR
    opts.log?.(
      `the receiver on ${opts.label} does not send keepalives (an older vdrep): asking again without them, and waiting up to ${formatDuration(legacy / 1000)} instead of ${formatDuration(opts.timeoutMs / 1000)} for each answer`,
      'notice',
    )
    stream.destroy()
    stream = await opts.reopen()
    writer.rebind(stream)
    frames.rebind(stream)
    watchdog.timeoutMs = legacy
    watchdog.touch()
    for (const f of resend) await writer.send(f.type, f.payload)
  })
  const sentBytes = (): number => (stream as Duplex & {sentBytes?: number}).sentBytes ?? 0
  const watchdog = new PeerWatchdog(
    {
      heard: () => frames.received,
      taken: sentBytes,
      // Cleared when the receiver refused KEEPALIVE (an older vdrep).
      speaks: () => frames.acceptKeepalives,
      deaf: () => frames.inputPaused,
      started: () => writer.lastType !== 0,
      lastSent: () => writer.lastType,
      lastReceived: () => frames.lastType,
    },
    opts.timeoutMs,
    opts.label,
    (err: TransportError) => {
      opts.log?.(err.message)
      frames.abort(err)
      writer.fail(err)
    },
  )
  watchdog.start()
  return {
    frames,
    writer,
    replicaPath: opts.replicaPath,
    abort: () => {
      watchdog.stop()
      stream.destroy()
    },
    close: async () => {
      watchdog.stop()
      if (closed) return
      closed = true
      writer.end()
      await opts.release()
    },
  }
}
