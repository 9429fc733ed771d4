import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {untilSignal} from '../cli/until-signal.js'
import {UsageError} from '../core/errors.js'
import {copyPoint, type CopiedPoint} from '../core/export/copy-point.js'
import {PointExport, type ServedPoint} from '../core/export/serve-point.js'
import {replicaFromArg} from '../core/points/settings.js'
import {formatBytes} from '../core/util/units.js'

export type ExportResult = ({mode: 'nbd'} & ServedPoint) | ({mode: 'copy'} & CopiedPoint)

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
  ]
  static override args = {replica: Args.string({description: 'the replica file (under --root when given)', required: true})}
  static override flags = {
    root: Flags.string({description: 'resolve the replica under this root, as `vdrep serve --root` does'}),
    at: Flags.string({
      description: "the point: a sequence (see `vdrep points`), 'latest' (default), a date (the newest point at or before it) or -DURATION (-90m)",
    }),
    nbd: Flags.string({description: 'serve the point here, read-only: unix:PATH or 127.0.0.1:PORT; repeatable', multiple: true, exclusive: ['to']}),
    to: Flags.string({description: 'write a sparse copy of the point to this new file instead', exclusive: ['nbd']}),
  }

  async run(): Promise<ExportResult> {
    const {args, flags} = await this.parse(Export)
    this.setGlobals(flags)
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
    const signalled = untilSignal(
      () => this.notice('stopping: finishing the reads in flight'),
      () => this.notice('still stopping; send the signal once more to quit at once'),
    )
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
}
