// Progress leaves the engine as typed events; commands decide how to draw them (a spinner or
// a bar on a TTY, nothing under cron). The default sink does nothing.
//
// Phases: a full sync goes connect, compare (bytes counted), verify, done; a push goes
// connect, freeze (the point in time), send (`blocks` set), commit (the replica journals and
// applies), done, or on into a full sync's phases when it falls back.
export type SyncPhase = 'connect' | 'compare' | 'verify' | 'freeze' | 'send' | 'commit' | 'done'

export interface SyncProgress {
  phase: SyncPhase
  bytesTotal: number
  bytesCompared: number
  bytesSent: number
  bytesDurable: number
  /** Blocks in the bundle (push, from the send phase on). */
  blocks?: number
}

export interface ProgressSink {
  (p: SyncProgress): void
}

export const noProgress: ProgressSink = () => {}

/** An event that names a phase and counts no bytes (a push's steps). */
export function phaseEvent(phase: SyncPhase, blocks?: number): SyncProgress {
  return {phase, bytesTotal: 0, bytesCompared: 0, bytesSent: 0, bytesDurable: 0, ...(blocks === undefined ? {} : {blocks})}
}

/**
 * How much a log line matters, said by the engine where it writes the line (the command never
 * guesses from the text): a notice (falling back to a full sync, resuming one) is shown unless
 * --quiet; a detail only with --verbose.
 */
export type LogLevel = 'notice' | 'detail'

/** The engine's log sink; a line without a level is a detail. */
export type SyncLog = (line: string, level?: LogLevel) => void
