// Progress leaves the engine as typed events; commands decide how to draw them (a bar on
// a TTY, nothing under cron). The default sink does nothing.
export interface SyncProgress {
  phase: 'connect' | 'compare' | 'verify' | 'done'
  bytesTotal: number
  bytesCompared: number
  bytesSent: number
  bytesDurable: number
}

export interface ProgressSink {
  (p: SyncProgress): void
}

export const noProgress: ProgressSink = () => {}

/**
 * How much a log line matters, said by the engine where it writes the line (the command never
 * guesses from the text): a notice (falling back to a full sync, resuming one) is shown unless
 * --quiet; a detail only with --verbose.
 */
export type LogLevel = 'notice' | 'detail'

/** The engine's log sink; a line without a level is a detail. */
export type SyncLog = (line: string, level?: LogLevel) => void
