// Phase marks for finding where a run's time goes (VDREP_TRACE=1, man/vdrep.1; read by
// bench/seed-phases.ts): each mark is the wall-clock time, the milliseconds since this process
// started, and a name. The core only marks; a command installs the sink (cli/base-command.ts
// writes to stderr), so the core never prints. With no sink a mark costs one branch.
type TraceSink = (line: string) => void

let sink: TraceSink | undefined

export function setTraceSink(s: TraceSink | undefined): void {
  sink = s
}

export function tracing(): boolean {
  return sink !== undefined
}

/** One mark: `<epoch ms> <ms since process start> <what>` (the epoch lines up two processes' marks). */
export function trace(what: string): void {
  if (!sink) return
  const now = performance.now()
  sink(`${(performance.timeOrigin + now).toFixed(1)} ${now.toFixed(1)} ${what}`)
}
