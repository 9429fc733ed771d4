// `vdrep status --prometheus` / `--textfile-dir`: the status rows in Prometheus' text exposition
// format (version 0.0.4), for node_exporter's textfile collector or any scraper. A few lines of
// our own rather than prom-client: measured (median of 11 runs, same machine), loading
// prom-client 15 and rendering one gauge costs ~32 ms over a bare `node -e 0` (58 ms), this
// module ~10 ms, for what is here a pure function of the rows. The tests hold the output to
// `promtool check metrics`.
import path from 'node:path'
import {writeFileAtomic} from '../util/fs-atomic.js'
import type {DiskStatusRow} from './row.js'

/** The file node_exporter's textfile collector reads (it only reads `*.prom`; our temp name does not end so). */
export const TEXTFILE_NAME = 'vdrep.prom'

interface Metric {
  name: string
  help: string
  /** The sample of one disk; null leaves the disk out (the value is unknown, not zero). */
  value: (r: DiskStatusRow) => number | null
}

const bool = (b: boolean): number => (b ? 1 : 0)
const seconds = (ms: number | null): number => (ms === null ? 0 : ms / 1000)

const METRICS: readonly Metric[] = [
  {name: 'vdrep_up', help: "1 when the disk's state could be read (status is not Error), else 0.", value: (r) => bool(r.state !== 'Error')},
  {
    name: 'vdrep_last_success_timestamp_seconds',
    help: 'When the replica last received a complete, proved sync (Unix time); 0 when never.',
    value: (r) => seconds(r.lastSyncMs),
  },
  {
    name: 'vdrep_last_attempt_timestamp_seconds',
    help: 'When the last push or full sync ended, whatever its outcome (Unix time); 0 when none is recorded.',
    value: (r) => seconds(r.lastAttempt?.atMs ?? null),
  },
  {
    name: 'vdrep_last_attempt_failed',
    help: '1 when the last push or full sync failed and none succeeded since.',
    value: (r) => bool(r.lastAttemptFailed),
  },
  {
    name: 'vdrep_consecutive_failures',
    help: 'Failed pushes or full syncs in a row (0 after a success).',
    value: (r) => (r.lastAttemptFailed ? (r.lastAttempt?.failuresInRow ?? 0) : 0),
  },
  {name: 'vdrep_rpo_seconds', help: 'The recovery point objective set at init, in seconds.', value: (r) => r.rpoSeconds},
  {name: 'vdrep_replica_age_seconds', help: 'Seconds since the last successful sync (absent when never synced).', value: (r) => r.ageSeconds},
  {
    name: 'vdrep_rpo_violated',
    help: '1 when the replica is past its RPO, was never synced, or its age is unknown (the clock went back).',
    value: (r) => bool(r.rpoViolated),
  },
  {name: 'vdrep_pending_bytes', help: 'Bytes written on the source and not on the replica yet.', value: (r) => r.bytesPending},
  {name: 'vdrep_pending_blocks', help: 'Blocks written on the source and not on the replica yet.', value: (r) => r.pendingBlocks},
  {name: 'vdrep_full_sync_needed', help: '1 when the next push cannot be a delta (it runs a full sync).', value: (r) => bool(r.untrusted)},
  {name: 'vdrep_tracking', help: '1 when a tracker (vdrep track) answers for the disk.', value: (r) => bool(r.tracking)},
  {
    name: 'vdrep_diverged',
    help: '1 when the replica host refused the last sync: the replica was written outside vdrep.',
    value: (r) => bool(r.state === 'Diverged'),
  },
  {
    name: 'vdrep_foreign_replica',
    help: '1 when the replica host refused the last sync: the replica belongs to another source.',
    value: (r) => bool(r.state === 'Foreign replica'),
  },
  {
    name: 'vdrep_fenced',
    help: '1 when the replica was promoted by a failover: this source is refused until a reprotect.',
    value: (r) => bool(r.state === 'Fenced'),
  },
  {
    name: 'vdrep_verify_pending',
    help: '1 when the change record must be checked against the block hash index before the next delta.',
    value: (r) => bool(r.state === 'Verify pending' || r.state === 'Verifying'),
  },
  {name: 'vdrep_last_sequence', help: 'Sequence number of the last committed sync.', value: (r) => r.lastSeq},
]

/** A label value as the text format wants it: backslash, double quote and newline escaped. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/** HELP text escapes only backslash and newline. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  return String(v)
}

/** The exposition text for these rows: every metric family once, one sample per disk. */
export function renderPrometheus(rows: readonly DiskStatusRow[]): string {
  const out: string[] = []
  for (const m of METRICS) {
    out.push(`# HELP ${m.name} ${escapeHelp(m.help.trim())}`, `# TYPE ${m.name} gauge`)
    for (const r of rows) {
      const v = m.value(r)
      if (v === null) continue
      // A disk of a consistency group carries its name (an empty label is the same as none to Prometheus).
      const group = r.group ? `,group="${escapeLabelValue(r.group)}"` : ''
      out.push(`${m.name}{disk="${escapeLabelValue(r.disk)}",target="${escapeLabelValue(r.target ?? '')}"${group}} ${formatValue(v)}`)
    }
  }
  return `${out.join('\n')}\n`
}

/**
 * Writes `DIR/vdrep.prom` so a collector reading at any moment sees the old file or the new
 * one, never part of one (temp file + rename in the same folder). World-readable: node_exporter
 * usually runs as another user, and nothing in it is secret beyond what `status` shows.
 */
export async function writeTextfile(dir: string, text: string): Promise<string> {
  const file = path.join(path.resolve(dir), TEXTFILE_NAME)
  await writeFileAtomic(file, Buffer.from(text), 0o644)
  return file
}
