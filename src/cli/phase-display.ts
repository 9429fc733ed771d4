// What a person at a terminal sees while `vdrep push` or `vdrep fullsync` runs: an ora spinner
// naming the phase (connecting, freezing, sending N blocks, committing, verifying), and the
// transfer bar while a full sync compares bytes. Only built for an interactive run (see
// BaseCommand.interactive): cron, pipes, --json and --quiet get no spinner and no escape codes.
//
// The cursor is hidden while it draws, so every way out shows it again: stop() (the commands
// call it in `finally`, on success and on error) and SIGINT/SIGTERM, after which the signal
// is raised again so the process still ends as it would have (exit by the signal).

import type {Ora} from 'ora'
import type {SyncProgress} from '../core/sync/progress.js'
import {createTransferBar} from './progress-bar.js'

const SHOW_CURSOR = '\u001B[?25h'

export interface PhaseDisplay {
  update: (p: SyncProgress) => void
  /** Runs `write` (a notice or a detail line) with the spinner lifted off its line. */
  around: (write: () => void) => void
  stop: () => void
}

/** The words for a phase; undefined for phases drawn as the bar (or not at all). */
export function phaseText(p: SyncProgress): string | undefined {
  switch (p.phase) {
    case 'connect':
      return 'connecting to the replica host'
    case 'freeze':
      return 'freezing the point in time'
    case 'send':
      return `sending ${p.blocks ?? 0} ${p.blocks === 1 ? 'block' : 'blocks'}`
    case 'commit':
      return 'committing on the replica host'
    case 'compare':
      return p.bytesTotal > 0 ? undefined : 'comparing'
    case 'verify':
      return 'verifying the replica'
    case 'done':
      return undefined
  }
}

/**
 * ora is loaded here, only for a terminal: importing it costs every push ~20 ms of start-up
 * (~75 ms unbundled), which cron's runs would pay for a spinner they never draw.
 */
export async function createPhaseDisplay(stream: NodeJS.WriteStream = process.stderr): Promise<PhaseDisplay> {
  const {default: ora} = await import('ora')
  let spinner: Ora | undefined
  let bar: ReturnType<typeof createTransferBar> | undefined
  let stopped = false
  const stopDrawing = (): void => {
    spinner?.stop()
    spinner = undefined
    bar?.stop()
    bar = undefined
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    stop()
    stream.write(SHOW_CURSOR)
    // Raised again with our handler gone: the default action (or other handlers) ends the process.
    process.kill(process.pid, signal)
  }
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM']
  for (const s of signals) process.once(s, onSignal)
  function stop(): void {
    if (stopped) return
    stopped = true
    for (const s of signals) process.removeListener(s, onSignal)
    stopDrawing()
  }
  return {
    update(p) {
      if (stopped) return
      const text = phaseText(p)
      if (text === undefined) {
        if (p.phase === 'compare') {
          spinner?.stop()
          spinner = undefined
          bar ??= createTransferBar()
          bar.update(p)
        } else stopDrawing()
        return
      }
      if (bar) {
        bar.stop()
        bar = undefined
      }
      if (spinner) {
        if (spinner.text !== text) spinner.text = text
        return
      }
      // A terminal that reports no width (a pty nobody sized) gets no spinner: ora divides by
      // the width to know how many lines to clear, and loops for ever on zero.
      if (!(stream.columns > 0)) return
      // discardStdin off: stdin stays as it is (raw mode would take Ctrl-C from the terminal).
      spinner = ora({text, stream, discardStdin: false, isEnabled: true}).start()
    },
    around(write) {
      spinner?.clear()
      write()
      spinner?.render()
    },
    stop,
  }
}
