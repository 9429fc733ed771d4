import {Flags} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {listReplicas, type ReplicaRow, type ReplicasResult} from '../core/replicas/replicas.js'
import {formatBytes, formatDuration} from '../core/util/units.js'

export default class Replicas extends BaseCommand {
  static override summary = 'On the replica host: every replica under a root, its source, state, last commit, restore points and space used.'
  static override description = `Reads what the receiver keeps beside each replica (its state, its restore points, a journal) and takes no lock: it never holds up a push. States: replicating (complete and as last committed), testing (a test view of a point is open), promoted (failed over), diverged (written outside vdrep), doubt (a full sync must settle it), incomplete (a full sync runs or did not finish), missing (state without a replica file), unreadable (the state file cannot be used). Space is what the replica, its restore points and its journal take on disk.`
  static override examples = ['<%= config.bin %> replicas --root /srv/replicas', '<%= config.bin %> replicas --root /srv/replicas --json']
  static override flags = {
    root: Flags.string({description: 'the folder `vdrep serve --root` writes replicas under', required: true}),
  }

  async run(): Promise<ReplicasResult> {
    const {flags} = await this.parse(Replicas)
    this.setGlobals(flags)
    const result = await listReplicas(flags.root)
    if (result.replicas.length === 0) this.say(`no replicas under ${result.root}`)
    else for (const line of render(result.replicas)) this.say(line)
    for (const u of result.unreadable) this.say(`not read: ${u.dir} (${u.reason})`)
    return result
  }
}

function lastCommit(r: ReplicaRow): string {
  if (r.lastCommit === null || r.ageSeconds === null) return 'never'
  const age = r.ageSeconds < 1 ? 'just now' : `${formatDuration(r.ageSeconds)} ago`
  return `seq ${r.lastSeq} ${r.lastCommit} (${age}${r.rpoViolated ? ', past its RPO' : ''})`
}

function points(r: ReplicaRow): string {
  if (!r.points) return '-'
  return `${r.points.count} since seq ${r.points.oldestSeq} (${formatBytes(r.points.bytes)})`
}

function render(rows: ReplicaRow[]): string[] {
  const head = ['REPLICA', 'STATE', 'LAST COMMIT', 'POINTS', 'SPACE', 'SOURCE']
  const cells = rows.map((r) => [
    r.name,
    r.state,
    lastCommit(r),
    points(r),
    formatBytes(r.space.total),
    [r.source.host, r.source.disk].filter(Boolean).join(':') || (r.replicaId ? `replica id ${r.replicaId}` : '-'),
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const line = (c: string[]) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]))).join('  ')
  const out = [line(head), ...cells.map(line)]
  for (const r of rows) {
    if (r.reason && r.state !== 'replicating') out.push(`${r.name}: ${r.state}: ${r.reason}`)
    if (r.journal) out.push(`${r.name}: a journal is there (a push is being applied, or waits for its replay)`)
    if (r.points?.problem) out.push(`${r.name}: ${r.points.problem}`)
    if (r.error) out.push(`${r.name}: ${r.error}`)
  }
  return out
}
