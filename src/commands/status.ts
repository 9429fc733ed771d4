import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {fitTable} from '../cli/fit-table.js'
import {stateDirFlag} from '../cli/state-dir-flag.js'
import {exitCodeOfCode} from '../core/errors.js'
import {statusCheckOutcome} from '../core/status/check.js'
import {statusRows, type DiskStatusRow} from '../core/status/status.js'
import {renderPrometheus, writeTextfile} from '../core/status/prometheus.js'
import {formatBytes, formatDuration} from '../core/util/units.js'
import {loadConfig} from '../core/fleet/config-file.js'
import {configFlag} from '../cli/fleet-flags.js'

export interface StatusResult {
  disks: DiskStatusRow[]
}

export default class Status extends BaseCommand {
  static override summary = 'One row per disk: target, tracking or not, state, changed blocks and bytes pending, last sync.'
  static override description = `With no disk, shows every disk the config file lists (/etc/vdrep/vdrep.conf, $VDREP_CONFIG or --config); without a config file (or with one that lists no disk), every disk that has a .psf in the current directory or the state folder. Changes nothing.

A failed push or full sync is recorded beside the .psf (<disk>.vdrep-last) and shown (state "Push failed", with the error) until a sync succeeds.

With --prometheus, prints Prometheus metrics instead of the table; with --textfile-dir DIR, writes them to DIR/vdrep.prom atomically for node_exporter's textfile collector.

With --check (for monitoring): exit 0 only when every disk is healthy. When the last push or full sync of a disk failed and none succeeded since, the exit code is that failure's (7 connection, 9 replica full, ...). Exit 6 when a disk is past its RPO, was never synced, or its last sync is recorded in the future (the clock went back); 1 when no disk was found or a disk is in the Error state (an unreadable disk or .psf, a tracker that died); 4 when a full sync is needed (a corrupt or foreign .psf, a disk written while no tracker ran).`
  static override examples = [
    '<%= config.bin %> status /vm/web.img /vm/db.img',
    '<%= config.bin %> status /vm/web.img --json',
    '<%= config.bin %> status /vm/web.img --textfile-dir /var/lib/prometheus/node-exporter',
  ]
  static override strict = false
  static override args = {disk: Args.string({description: 'disks initialised with `vdrep init` (any number)'})}
  static override flags = {
    'state-dir': stateDirFlag,
    config: configFlag,
    prometheus: Flags.boolean({description: 'print the status as Prometheus metrics (text exposition format) instead of the table'}),
    'textfile-dir': Flags.string({
      description: "write the metrics to DIR/vdrep.prom atomically (for node_exporter's textfile collector); prints nothing else unless --prometheus",
    }),
    check: Flags.boolean({description: 'exit non-zero unless every disk is healthy: 6 RPO violated, 1 error or no disks, 4 full sync needed (for monitoring)'}),
  }

  async run(): Promise<StatusResult> {
    const {argv, flags} = await this.parse(Status)
    this.setGlobals(flags)
    // No disk named: the configured disks, else (no config, or none listed) the current folder's.
    const named = argv as string[]
    const configured = named.length === 0 ? ((await loadConfig(flags.config))?.disks.map((d) => d.disk) ?? []) : []
    const disks = await statusRows(named.length > 0 ? named : configured)
    const textfileDir = flags['textfile-dir']
    if (flags.prometheus || textfileDir !== undefined) {
      const text = renderPrometheus(disks)
      if (textfileDir !== undefined) await writeTextfile(textfileDir, text)
      if (flags.prometheus && !this.jsonEnabled()) process.stdout.write(text)
    } else if (disks.length === 0) this.say('no disks: name one, list them in /etc/vdrep/vdrep.conf, or run in the folder that holds <disk>.psf')
    else for (const line of renderTable(disks)) this.say(line)
    if (flags.check) {
      const outcome = statusCheckOutcome(disks)
      if (outcome !== null) {
        if (this.jsonEnabled()) process.stdout.write(`${JSON.stringify({disks}, null, 2)}\n`)
        this.exit(exitCodeOfCode(outcome))
      }
    }
    return {disks}
  }
}

function pending(r: DiskStatusRow): string {
  return `${r.pendingBlocks} blocks (${formatBytes(r.bytesPending)})`
}

/** "2026 x 4 MiB" (the log's settings); with a tracker, how many are hot ("12/2026 hot x 4 MiB"). */
function activityLog(r: DiskStatusRow): string {
  const al = r.activityLog
  if (!al) return '-'
  const size = formatBytes(al.extentBytes)
  if (al.hotExtents === null) return `${al.extents} x ${size}`
  return `${al.hotExtents}/${al.extents} hot x ${size}${al.inUse === false ? ' (off: no index)' : ''}`
}

/** The last sync's time, to the minute, in UTC (its age is in AGE/RPO; --json has the exact time). */
function lastSync(r: DiskStatusRow): string {
  if (r.lastSyncMs === null || r.ageSeconds === null) return 'never'
  return `${new Date(r.lastSyncMs).toISOString().slice(0, 16).replace('T', ' ')}Z`
}

function renderTable(rows: DiskStatusRow[]): string[] {
  const head = ['DISK', 'TARGET', 'TRACKING', 'STATE', 'PENDING', 'ACTIVITY LOG', 'AGE/RPO', 'LAST SYNC']
  const cells = rows.map((r) => [
    r.group ? `${r.disk} (group ${r.group})` : r.disk,
    r.target ?? '-',
    r.tracking && r.tracker ? `pid ${r.tracker.pid}, ${r.tracker.clients} client${r.tracker.clients === 1 ? '' : 's'}` : 'no',
    r.state,
    pending(r),
    activityLog(r),
    r.rpoSeconds === null ? '-' : `${r.ageSeconds === null ? 'never' : formatDuration(r.ageSeconds)}/${formatDuration(r.rpoSeconds)}`,
    lastSync(r),
  ])
  // Paths give way when a terminal is too narrow; a pipe gets them whole.
  const out = fitTable(head, cells, {columns: process.stdout.isTTY ? process.stdout.columns : undefined, elastic: [0, 1]})
  for (const r of rows) if (r.reason) out.push(`${r.disk}: ${r.reason}`)
  return out
}
