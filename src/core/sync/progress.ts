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
