// The receiver's half of KEEPALIVE (doc/protocol.md, "Keepalive"): while a session whose HELLO
// asked for it runs, a KEEPALIVE goes out whenever nothing else went out for
// KEEPALIVE_INTERVAL_MS. One timer for the whole session, whatever it is doing (writing the
// journal, applying, fsyncing, scanning, proving), rather than a call in each long phase: a
// phase added later cannot forget it, and a receiver whose event loop still turns is alive.
// A stopped process (SIGSTOP, a frozen VM) sends nothing, which is what the client's --timeout
// detects. Nothing is sent while the stream asks to drain: the client is then the slow side,
// and a keepalive queued behind megabytes of statuses would prove nothing.
import {FrameType} from '../protocol/frame.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import {KEEPALIVE_INTERVAL_MS} from '../protocol/messages.js'

/** How often the pump looks; a keepalive is at most this late. */
const TICK_MS = 1_000

/** Starts the pump on `writer`; the returned function stops it (before the session's last frame). */
export function startKeepalives(writer: FrameWriter, intervalMs = KEEPALIVE_INTERVAL_MS): () => void {
  const timer = setInterval(
    () => {
      if (performance.now() - writer.lastSentMs < intervalMs || !writer.idle) return
      // Sent whole between two frames of the session: a send writes its frame synchronously.
      writer.send(FrameType.KEEPALIVE).catch(() => {})
    },
    Math.min(TICK_MS, intervalMs),
  )
  timer.unref()
  return () => clearInterval(timer)
}
