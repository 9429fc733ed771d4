import {Args, Flags} from '@oclif/core'
import fs from 'node:fs/promises'
import path from 'node:path'
import {BaseCommand} from '../cli/base-command.js'
import {timeoutFlag, timeoutMs} from '../cli/timeout-flag.js'
import {stateDirFlag} from '../cli/state-dir-flag.js'
import {listPoints, type PointsListing} from '../core/points/list.js'
import {listRemotePoints} from '../core/points/remote.js'
import {replicaFromArg, setRetention} from '../core/points/settings.js'
import {psfPathFor} from '../core/psf/psf-file.js'
import {statePathFor} from '../core/receiver/replica-state.js'
import {formatBytes} from '../core/util/units.js'
import {UsageError} from '../core/errors.js'
import {checkGroupName} from '../core/group/name.js'
import {groupPointsOf, listGroupPoints, type GroupPoint} from '../core/group/points.js'

export interface PointsResult extends PointsListing {
  /** The disk asked from the protected host (its replica's points, through the receiver). */
  disk?: string
  /** Points dropped by a new --retention policy, when one was set. */
  dropped?: number[]
  /** Older points the receiver did not send (over the query's cap). */
  omitted?: number
}

export default class Points extends BaseCommand {
  static override summary = 'List the restore points kept on the replica host for a replica (every push is one), and set their retention.'
  static override description = `On the replica host, name the replica. On the protected host, name the disk (one with a .psf): its replica's points are asked of the receiver over the disk's target, as a push reaches it, and only a replica this disk owns is listed. Each committed push keeps what it overwrote, so the replica can be read as it was at any kept point. Retention (per replica, recorded in its state) is applied after each commit: a comma list of AGE:all|hourly|daily|weekly|EVERY tiers, count:N and bytes:SIZE or bytes:P% of the disk, or 'off'. Default: 1h:all,24h:hourly,bytes:10%. A full sync starts a new chain: older points are dropped.`
  static override examples = [
    '<%= config.bin %> points /srv/replicas/web.img',
    '<%= config.bin %> points web.img --root /srv/replicas --json',
    '<%= config.bin %> points web.img --root /srv/replicas --retention 1h:all,1d:hourly,7d:daily,bytes:20%',
    '<%= config.bin %> points /vm/web.img   (on the protected host: the disk, its .psf names the replica)',
    '<%= config.bin %> points --group db --root /srv/replicas   (the points of a consistency group: one sequence per member)',
  ]
  static override args = {replica: Args.string({description: 'the replica file (under --root when given), or on the protected host the disk'})}
  static override flags = {
    root: Flags.string({description: 'resolve the replica under this root, as `vdrep serve --root` does (the replica host)'}),
    retention: Flags.string({description: "set this replica's retention policy and apply it now (e.g. 1h:all,24h:hourly,count:48,bytes:10%, or off)"}),
    'state-dir': stateDirFlag,
    group: Flags.string({
      description: 'on the replica host: list the points of this consistency group (with --root), each naming the sequence of every member',
    }),
    'accept-new-host-key': Flags.boolean({description: 'from the protected host: trust and record an unknown replica host key (never a changed one)'}),
    timeout: timeoutFlag,
  }

  async run(): Promise<PointsResult | {group: string; points: GroupPoint[]}> {
    const {args, flags} = await this.parse(Points)
    this.setGlobals(flags)
    if (flags.group !== undefined) {
      if (flags.root === undefined || args.replica !== undefined)
        throw new UsageError('BAD_ARGUMENT', 'points --group takes --root (the receiver root) and no replica', {hint: 'vdrep points --group NAME --root DIR'})
      const points = await listGroupPoints(path.resolve(flags.root), checkGroupName(flags.group))
      for (const line of renderGroup(flags.group, points)) this.say(line)
      return {group: flags.group, points}
    }
    if (args.replica === undefined) throw new UsageError('BAD_ARGUMENT', 'points needs a replica (or a disk), or --group with --root')
    const disk = path.resolve(args.replica)
    // A replica (its receiver state beside it) is listed here, even one a failover promoted (it
    // has a .psf of its own then); a disk with a .psf and no such state is asked through its target.
    const present = (p: string) =>
      fs.stat(p).then(
        () => true,
        () => false,
      )
    const fromClient = flags.root === undefined && !(await present(statePathFor(disk))) && (await present(psfPathFor(disk)))
    let listing: PointsResult
    if (fromClient) {
      listing = await listRemotePoints(disk, {retention: flags.retention, acceptNewHostKey: flags['accept-new-host-key'], timeoutMs: timeoutMs(flags.timeout)})
    } else {
      const replica = await replicaFromArg(args.replica, flags.root)
      const pruned = flags.retention === undefined ? undefined : await setRetention(replica, flags.retention)
      listing = await listPoints(replica)
      if (pruned) listing.dropped = pruned.dropped
      // A point that is also a consistency group's point says which (records under the root, or beside a local replica).
      const groups = await groupPointsOf(flags.root === undefined ? path.dirname(replica) : await fs.realpath(flags.root), replica)
      for (const p of listing.points) if (groups.has(p.seq)) p.group = groups.get(p.seq)
    }
    for (const line of render(listing)) this.say(line)
    return listing
  }
}

function renderGroup(group: string, points: GroupPoint[]): string[] {
  const out = [`points of consistency group ${group} (each is one point in time across its members)`]
  for (const p of points) {
    const members = p.members.map((m) => `${m.path}@${m.seq}${m.kept ? '' : ' (dropped)'}`).join(', ')
    out.push(`${group}#${p.groupSeq}  ${p.time}  ${members}${p.restorable ? '' : '  (not restorable: a member dropped its point)'}`)
  }
  out.push(`${points.length} group point(s)`)
  return out
}

function render(l: PointsResult): string[] {
  const out: string[] = []
  if (l.disk) out.push(`restore points of ${l.replica} (the replica of ${l.disk})`)
  if (l.dropped && l.dropped.length > 0) out.push(`retention dropped point(s) ${l.dropped.join(', ')}`)
  const grouped = l.points.some((p) => p.group)
  const head = ['SEQ', 'TIME', 'KEPT', ...(grouped ? ['GROUP'] : []), 'TESTED']
  const cells = l.points.map((p) => [
    String(p.seq),
    p.time,
    p.current ? 'current (the replica)' : formatBytes(p.bytes),
    ...(grouped ? [p.group ?? '-'] : []),
    p.tested ?? 'no',
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const line = (c: string[]) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]))).join('  ')
  out.push(line(head), ...cells.map(line))
  out.push(`${l.points.length} point(s), ${formatBytes(l.totalBytes)} kept; retention ${l.retention}`)
  if (l.omitted) out.push(`${l.omitted} older point(s) not listed (more than one answer holds)`)
  if (l.testing) out.push(`a test of point ${l.testing.seq} runs since ${l.testing.since} (pid ${l.testing.pid}); \`vdrep test stop\` ends it`)
  if (l.untrusted) out.push(`no older point can be read: ${l.untrusted}`)
  if (l.problem) out.push(`older points are cut off: ${l.problem}`)
  return out
}
