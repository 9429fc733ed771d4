// The client's --timeout on a network carrier: a session is abandoned when the receiver said
// nothing (no byte, keepalives included) for the timeout. Only what the peer says counts:
// bytes of ours that the tunnel still takes prove nothing, since sshd's channel window and
// the kernel's socket buffers on the replica host go on taking them from a stopped receiver
// (SIGSTOP, a frozen VM, a hung process), and under --bwlimit a drip-fed tunnel took them for
// minutes. A live receiver that agreed to KEEPALIVE sends a frame at least every
// KEEPALIVE_INTERVAL_MS whatever it is doing, so silence from it means it stopped.
// Two exceptions: time while our own input is paused on unread bytes (we are the slow side,
// and the receiver rightly holds its keepalives behind them) and time our event loop did
// not turn are not counted against the peer; and a receiver that does not send keepalives
// (an older vdrep, under a timeout LEGACY_TIMEOUT_FACTOR times longer) has nothing to say
// while it takes a bundle, so for it bytes taken count as life, as before.
// The clock starts with the first frame sent (a push may freeze its change record before its
// hello, while the receiver rightly says nothing).
import {TransportError} from '../errors.js'
import {FrameType, frameTypeName} from '../protocol/frame.js'
import {formatDuration} from '../util/units.js'

/** Default --timeout: two minutes without a byte from a receiver that sends keepalives. */
export const DEFAULT_TIMEOUT_MS = 120_000
/** The shortest --timeout: two keepalive intervals and then some, so one late tick never cuts a live session. */
export const MIN_TIMEOUT_MS = 10_000
/**
 * A receiver that does not know KEEPALIVE (an older vdrep) is silent through a long apply or
 * proof: the timeout is then this many times longer (2 min → 30 min), and the client says so.
 */
export const LEGACY_TIMEOUT_FACTOR = 15

export interface WatchedSession {
  /** Bytes received from the peer so far, keepalives included: its sign of life. */
  heard(): number
  /** Bytes of ours the tunnel took so far: life only from a peer that does not speak (below). */
  taken(): number
  /** The peer agreed to KEEPALIVE, or has not answered yet (its first answer says). */
  speaks(): boolean
  /** Our input is paused on bytes we have not read: we, not the peer, are the slow side. */
  deaf(): boolean
  /** Whether a frame was sent yet (the clock starts then). */
  started(): boolean
  /** The last frame types sent and received (0: none yet), to name the phase that hung. */
  lastSent(): number
  lastReceived(): number
}

export class PeerWatchdog {
  private timer: NodeJS.Timeout | undefined
  private last = -1
  private lastChangeMs = performance.now()
  private lastTickMs = performance.now()

  constructor(
    private readonly session: WatchedSession,
    public timeoutMs: number,
    /** `user@host:port`, for the message. */
    private readonly label: string,
    private readonly onTimeout: (err: TransportError) => void,
  ) {}

  start(): void {
    this.lastTickMs = performance.now()
    this.timer = setInterval(() => this.tick(), this.tickMs())
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** Something moved that the counters do not see (a reconnection): the clock starts again. */
  touch(): void {
    this.lastChangeMs = performance.now()
  }

  private tickMs(): number {
    return Math.min(1_000, Math.max(50, this.timeoutMs / 8))
  }

  private tick(): void {
    const now = performance.now()
    // A tick far later than asked: our event loop stood still (a long synchronous step, a
    // stopped client), and bytes that arrived meanwhile are not read yet: not the peer's silence.
    const stalled = now - this.lastTickMs > Math.max(4 * this.tickMs(), this.timeoutMs / 4)
    this.lastTickMs = now
    const s = this.session
    const sign = s.heard() + (s.speaks() ? 0 : s.taken())
    if (!s.started() || sign !== this.last || s.deaf() || stalled) {
      this.last = sign
      this.lastChangeMs = now
      return
    }
    if (now - this.lastChangeMs < this.timeoutMs) return
    this.stop()
    const secs = Math.max(1, Math.round(this.timeoutMs / 1000))
    this.onTimeout(
      new TransportError(
        'PEER_TIMEOUT',
        `the replica host ${this.label} sent nothing for ${formatDuration(secs)} ${phaseOf(this.session.lastSent(), this.session.lastReceived())}`,
        {
          hint: 'is vdrep serve on the replica host running and its disk answering (not stopped, not hung)? Nothing was lost: run the command again, or give a longer --timeout',
        },
      ),
    )
  }
}

/** Where the session stood, from the last frames each way. */
export function phaseOf(sent: number, received: number): string {
  if (sent === FrameType.HELLO && received === 0) return 'after the hello (no answer to it)'
  switch (sent) {
    case FrameType.BUNDLE_END:
      return 'while it committed the bundle (journal, apply, fsync)'
    case FrameType.DONE:
      return 'while it finished and proved the full sync'
    case FrameType.BUNDLE_BEGIN:
    case FrameType.DATA:
    case FrameType.ZERO_RUN:
      return 'while blocks were being sent'
    case FrameType.CHECKPOINT:
      return 'while it checked a checkpoint or scanned the replica'
    case FrameType.POINTS_REQUEST:
      return 'while it listed the restore points'
    case FrameType.REPROTECT:
    case FrameType.OWED_RECORDED:
      return 'during the reprotect'
    default:
      return `after ${frameTypeName(sent)} (last heard: ${received === 0 ? 'nothing' : frameTypeName(received)})`
  }
}
