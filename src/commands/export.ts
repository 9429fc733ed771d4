import {Args, Flags, type Interfaces} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {groupPointArgs} from '../cli/group-point-args.js'
import {untilSignal} from '../cli/until-signal.js'
import {UsageError} from '../core/errors.js'
import {copyPoint, type CopiedPoint} from '../core/export/copy-point.js'
import {copyGroupPoint, groupPointToRead, type CopiedGroupPoint} from '../core/export/export-group.js'
import {PointExport, type ServedPoint} from '../core/export/serve-point.js'
import {replicaFromArg} from '../core/points/settings.js'
import {formatBytes} from '../core/util/units.js'

export type ExportResult = ({mode: 'nbd'} & ServedPoint) | ({mode: 'copy'} & CopiedPoint)
export type GroupExportResult = {mode: 'nbd'; group: string; groupSeq: number; members: ServedPoint[]} | ({mode: 'copy'} & CopiedGroupPoint)

export default class Export extends BaseCommand {
  static override summary = 'Read a restore point of a replica: serve it read-only over NBD, or write a sparse copy.'
  static override description =
    'Run on the replica host. With --nbd, serves the point until SIGTERM or SIGINT (a unix socket is made mode 0600; on loopback TCP only your uid and root are served); ' +
    'writes are refused (EPERM). With --to, writes a sparse copy (zero blocks are holes), synced, and exits 0 only when it is complete. ' +
    'Pushes keep committing meanwhile; the export keeps showing its point, and retention keeps that point while it is open.'
  static override examples = [
    '<%= config.bin %> export /srv/replicas/web.img --nbd unix:/run/web-point.nbd',
    '<%= config.bin %> export web.img --root /srv/replicas --at 41 --to /restore/web-41.img',
    '<%= config.bin %> export web.img --root /srv/replicas --at 2026-12-07T09:00Z --nbd unix:/tmp/web.nbd',
    '<%= config.bin %> export web.img --root /srv/replicas --at -2h --to /restore/web-2h-ago.img',
    'qemu-img convert -f raw -O qcow2 nbd+unix:///web.img?socket=/run/web-point.nbd web.qcow2',
    '<%= config.bin %> export --group db --root /srv/replicas --at 12 --to /restore/db-12',
  ]
  static override args = {replica: Args.string({description: 'the replica file (under --root when given); none with --group'})}
  static override flags = {
    root: Flags.string({description: 'resolve the replica under this root, as `vdrep serve --root` does'}),
    at: Flags.string({
      description: "the point: a sequence (see `vdrep points`), 'latest' (default), a date (the newest point at or before it) or -DURATION (-90m)",
    }),
    nbd: Flags.string({description: 'serve the point here, read-only: unix:PATH or 127.0.0.1:PORT; repeatable', multiple: true, exclusive: ['to']}),
    to: Flags.string({description: 'write a sparse copy of the point to this new file instead (with --group: into this folder)', exclusive: ['nbd']}),
    group: Flags.string({
      description:
        'every member of this consistency group at one group point (--at: its group sequence; default the newest every member keeps): exports of one NBD server, or copies under --to by their paths under --root',
    }),
  }

  async run(): Promise<ExportResult | GroupExportResult> {
    const {args, flags} = await this.parse(Export)
    this.setGlobals(flags)
    if (flags.group !== undefined) return this.group(flags.group, args.replica, flags)
    if (args.replica === undefined) throw new UsageError('USAGE', 'name the replica to read (or --group NAME --root DIR)')
    const replica = await replicaFromArg(args.replica, flags.root)
    if (flags.to !== undefined) {
      const c = await copyPoint(replica, flags.to, {at: flags.at})
      this.say(
        `copied point ${c.seq} (${c.time}) of ${c.replica} to ${c.to}: ${formatBytes(c.size)}, ${formatBytes(c.dataBytes)} written, the rest holes, ` +
          `in ${c.seconds.toFixed(1)} s`,
      )
      return {mode: 'copy', ...c}
    }
    if (!flags.nbd || flags.nbd.length === 0) throw new UsageError('USAGE', 'say where the point goes: --nbd unix:PATH to serve it, or --to FILE to copy it')
    const signalled = this.untilStopped()
    const exp = await PointExport.start(replica, {
      at: flags.at,
      listen: flags.nbd,
      log: (line) => this.detail(line),
      onRefused: (line) => this.logToStderr(`vdrep: warning: ${line}`),
    })
    const s = exp.info
    this.say(`exporting point ${s.seq} (${s.time}) of ${s.replica} read-only: NBD export "${s.exportName}" on ${s.nbd.join(' and ')} (${formatBytes(s.size)})`)
    await signalled
    await exp.close()
    this.say(`stopped exporting point ${s.seq} of ${s.replica}`)
    return {mode: 'nbd', ...s}
  }

  private untilStopped(): Promise<unknown> {
    return untilSignal(
      () => this.notice('stopping: finishing the reads in flight'),
      () => this.notice('still stopping; send the signal once more to quit at once'),
    )
  }

  private async group(group: string, replica: string | undefined, flags: Interfaces.InferredFlags<typeof Export.flags>): Promise<GroupExportResult> {
    const {root, groupSeq} = groupPointArgs(replica, flags)
    if (flags.to !== undefined) {
      const r = await copyGroupPoint(root, group, flags.to, {groupSeq})
      for (const c of r.copies)
        this.say(
          'kept' in c
            ? `kept ${c.to}: point ${c.seq} of ${c.replica}, copied by an earlier run`
            : `copied point ${c.seq} of ${c.replica} to ${c.to}: ${formatBytes(c.dataBytes)} written, the rest holes`,
        )
      this.say(`copied group ${group} at group point ${r.groupSeq}: ${r.copies.length} members into ${flags.to}`)
      return {mode: 'copy', ...r}
    }
    if (!flags.nbd || flags.nbd.length === 0)
      throw new UsageError('USAGE', 'say where the group point goes: --nbd unix:PATH to serve it, or --to DIR to copy it')
    const signalled = this.untilStopped()
    const g = await groupPointToRead(root, group, groupSeq)
    const exp = await PointExport.startMany(g.points, {
      listen: flags.nbd,
      log: (line) => this.detail(line),
      onRefused: (line) => this.logToStderr(`vdrep: warning: ${line}`),
    })
    for (const s of exp.infos) this.say(`exporting point ${s.seq} of ${s.replica} read-only: NBD export "${s.exportName}" (${formatBytes(s.size)})`)
    this.say(`exporting group ${group} at group point ${g.groupSeq} on ${exp.info.nbd.join(' and ')}`)
    await signalled
    await exp.close()
    this.say(`stopped exporting group ${group}`)
    return {mode: 'nbd', group, groupSeq: g.groupSeq, members: exp.infos}
  }
}
