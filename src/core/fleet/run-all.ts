// `push --all` and `fullsync --all`: every disk of the config file, `jobs` at a time. Each disk
// is its own job: its settings made to agree with the config first (reconcile.ts), then the
// work; its outcome (recorded beside its .psf like any attempt, for `status`) never stops the
// others. The run's exit code is the highest exit code of any disk (0 when every disk
// succeeded), so one failing disk is never hidden behind the others' success.
import {asVdrepError, exitCodeOf} from '../errors.js'
import {withAttemptRecord, type AttemptKind} from '../status/last-attempt.js'
import {SharedBudget} from '../sync/shared-budget.js'
import type {SettingChangeLine} from '../settings/change.js'
import type {ConfiguredDisk, FleetConfig} from './config-file.js'
import {applyConfigToDisk} from './reconcile.js'

export interface DiskOutcome<T> {
  disk: string
  ok: boolean
  exitCode: number
  result?: T
  error?: {code: string; message: string; hint?: string}
  /** Settings the config file changed in this disk's .psf before the work (in place). */
  applied: SettingChangeLine[]
}

export interface FleetRun<T> {
  config: string
  jobs: number
  /** Bytes per second shared by the transfers running at once (0: none). */
  budgetBytesPerSecond: number
  disks: Array<DiskOutcome<T>>
  exitCode: number
}

export interface FleetRunOptions<T> {
  kind: AttemptKind
  /** Overrides the config's `jobs`. */
  jobs?: number
  /** Overrides the config's `bandwidth-budget` (0: none). */
  budgetBytesPerSecond?: number
  /** A result that is not an attempt (a push that was not due): not recorded. */
  skipped?: (r: T) => boolean
  /** The config changed a disk's settings (before its work starts). */
  onApplied?: (disk: string, lines: SettingChangeLine[]) => void
  /** A disk finished, well or not: for its summary line, as it happens. */
  onDone?: (outcome: DiskOutcome<T>) => void
  warn?: (line: string) => void
}

/** One disk's sync; it calls `begun` once it holds the disk and starts (status/last-attempt.ts). */
export type DiskWork<T> = (disk: string, shared: {budget?: SharedBudget; begun: () => Promise<void>}) => Promise<T>

export async function runForEachDisk<T>(config: FleetConfig, work: DiskWork<T>, opts: FleetRunOptions<T>): Promise<FleetRun<T>> {
  const jobs = Math.max(1, opts.jobs ?? config.jobs)
  const rate = opts.budgetBytesPerSecond ?? config.budgetBytesPerSecond
  const budget = rate > 0 ? new SharedBudget(rate) : undefined
  const outcomes: Array<DiskOutcome<T>> = new Array(config.disks.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < config.disks.length) {
      const i = next++
      outcomes[i] = await oneDisk(config, config.disks[i], work, budget, opts)
      opts.onDone?.(outcomes[i])
    }
  }
  await Promise.all(Array.from({length: Math.min(jobs, config.disks.length)}, worker))
  return {
    config: config.file,
    jobs,
    budgetBytesPerSecond: rate,
    disks: outcomes,
    exitCode: outcomes.reduce((worst, o) => Math.max(worst, o.exitCode), 0),
  }
}

async function oneDisk<T>(
  config: FleetConfig,
  d: ConfiguredDisk,
  work: DiskWork<T>,
  budget: SharedBudget | undefined,
  opts: FleetRunOptions<T>,
): Promise<DiskOutcome<T>> {
  let applied: SettingChangeLine[] = []
  try {
    const result = await withAttemptRecord(
      d.disk,
      opts.kind,
      async (begun) => {
        const change = await applyConfigToDisk(d, config.file)
        if (change) {
          applied = change.changed
          opts.onApplied?.(d.disk, change.changed)
        }
        return work(d.disk, {budget, begun})
      },
      {skipped: opts.skipped, warn: opts.warn},
    )
    return {disk: d.disk, ok: true, exitCode: 0, result, applied}
  } catch (err) {
    const e = asVdrepError(err)
    return {disk: d.disk, ok: false, exitCode: exitCodeOf(e), error: {code: e.code, message: e.message, ...(e.hint ? {hint: e.hint} : {})}, applied}
  }
}
