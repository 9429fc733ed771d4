// The flags and the rendering shared by the commands that work on every configured disk
// (`push --all`, `fullsync --all`, and `status` with no disk): where the config file is, how
// many disks at once, and one line per disk as each finishes (a terminal or not: several
// disks at once cannot share one progress display), then one line for the run.
import {Flags} from '@oclif/core'
import {UsageError} from '../core/errors.js'
import {CONFIG_ENV, DEFAULT_CONFIG} from '../core/fleet/config-file.js'
import type {DiskOutcome, FleetRun} from '../core/fleet/run-all.js'
import type {SettingChangeLine} from '../core/settings/change.js'
import {MAX_JOBS} from '../core/fleet/config-file.js'

export const configFlag = Flags.string({
  description: `the config file that lists the disks (default ${DEFAULT_CONFIG}, or $${CONFIG_ENV}); a missing default file is no error, a missing named one is`,
  helpValue: 'PATH',
})

export const allFlags = {
  all: Flags.boolean({description: 'every disk the config file lists (one line per disk; the exit code is the highest of any disk)'}),
  jobs: Flags.integer({description: 'with --all: how many disks at once (default: the config\'s "jobs", else 1)', min: 1, max: MAX_JOBS}),
  'bandwidth-budget': Flags.string({
    description: 'with --all: bytes per second shared by every transfer running at once (e.g. 100M; default: the config\'s "bandwidth-budget")',
  }),
  config: configFlag,
}

/**
 * The flags that decide about one replica (overwrite it, hand it over, cut it) are never given
 * to every disk at once: run them on the disk they are meant for.
 */
export function refuseOneDiskFlags(flags: Record<string, unknown>): void {
  const given = ['take-over-replica', 'discard-replica-changes', 'truncate-replica', 'final', 'dry-run'].filter((f) => flags[f] === true)
  if (given.length > 0)
    throw new UsageError('USAGE', `--all cannot take --${given.join(', --')}: it decides about one replica`, {
      hint: 'run it on the disk it is meant for: vdrep push DISK --take-over-replica ...',
    })
}

/** "rpo 15m -> 5m, identity - -> /root/.ssh/id" */
export function changeText(lines: SettingChangeLine[]): string {
  return lines.map((l) => `${l.key} ${l.from ?? '-'} -> ${l.to ?? '-'}`).join(', ')
}

/** One line for a disk that failed; its error's hint on a second line. */
export function failureLines<T>(verb: string, o: DiskOutcome<T>): string[] {
  const e = o.error
  if (!e) return []
  return [`${verb} ${o.disk}: failed (exit ${o.exitCode}, ${e.code}): ${e.message}`, ...(e.hint ? [`${verb} ${o.disk}: hint: ${e.hint}`] : [])]
}

/** The run's last line: how many disks, how many failed, the exit code and its rule. */
export function fleetSummary<T>(verb: string, run: FleetRun<T>, skipped: (r: T) => boolean = () => false): string {
  const failed = run.disks.filter((d) => !d.ok).length
  const notDue = run.disks.filter((d) => d.ok && d.result !== undefined && skipped(d.result)).length
  const done = run.disks.length - failed - notDue
  const parts = [`${done} done`, ...(notDue ? [`${notDue} not due`] : []), `${failed} failed`]
  return `${verb} --all: ${run.disks.length} disk${run.disks.length === 1 ? '' : 's'} from ${run.config}, ${run.jobs} at a time: ${parts.join(', ')}${failed ? ` (exit ${run.exitCode}, the highest of any disk)` : ''}`
}
