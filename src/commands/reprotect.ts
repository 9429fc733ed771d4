import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {timeoutFlag, timeoutMs} from '../cli/timeout-flag.js'
import {settingsFromFlags, targetFlags} from '../cli/target-flags.js'
import {reprotect, type ReprotectResult} from '../core/failover/reprotect.js'
import {formatBytes} from '../core/util/units.js'

export default class Reprotect extends BaseCommand {
  static override summary = 'Replicate a promoted disk back to its old primary, shipping only what changed on either side since the failover.'
  static override description = `Run on the promoted side (the replica host after \`vdrep failover\`); its tracker may keep serving the VM (the owed blocks are marked through it), but a new --to is recorded only while none runs. The old primary's \`vdrep serve --root\` must hold the old disk, and nothing may track it. Its host sends the blocks it holds differently (unshipped at the failover, or written after it: its .psf's bitmaps, checked locally if its tracker died); they are recorded here, the old disk becomes a replica of this one, and one delta ships the union. The old primary's own writes are kept there as a restore point (\`vdrep points\`). If its record cannot be trusted, nothing is written unless --discard-divergent (then a checksum full sync, which still sends only differences). Exit codes as for push; 12 never (that is the old side's).`
  static override examples = ['<%= config.bin %> reprotect /srv/replicas/web.img --to root@primary:/vm/web.img']
  static override args = {disk: Args.string({description: 'the promoted disk (a replica that `vdrep failover` promoted)', required: true})}
  static override flags = {
    ...targetFlags,
    to: Flags.string({description: 'the old primary disk, [user@]host[:port]:/path, under its `vdrep serve --root` (recorded for later pushes)'}),
    'discard-divergent': Flags.boolean({
      description: "when the old primary's record cannot be trusted, overwrite its writes by a full sync (no restore point of them)",
    }),
    'accept-new-host-key': Flags.boolean({description: 'trust and record an unknown host key of the old primary host (never a changed one)'}),
    timeout: timeoutFlag,
  }

  async run(): Promise<ReprotectResult> {
    const {args, flags} = await this.parse(Reprotect)
    this.setGlobals(flags)
    timeoutMs(flags.timeout) // a bad --timeout is a usage error before anything runs
    const r = await reprotect(args.disk, {
      to: flags.to,
      settings: settingsFromFlags(flags),
      discardDivergent: flags['discard-divergent'],
      acceptNewHostKey: flags['accept-new-host-key'],
      timeoutMs: timeoutMs(flags.timeout),
      log: (line, level) => (level === 'notice' ? this.notice(line) : this.detail(line)),
    })
    const p = r.push
    const how = r.fullSyncReason
      ? `full sync (${r.fullSyncReason}), ${formatBytes(p.bytesSent)} sent`
      : `${r.alreadyReprotected ? 'already a replica; ' : `${r.owedBlocks} blocks owed by the old primary (kept there as a restore point); `}sequence ${p.seq} committed, ${p.blocks} blocks (${formatBytes(p.bytesSent)} sent)`
    this.say(`reprotect ${r.disk} -> ${r.target}: ${how} in ${p.seconds.toFixed(2)} s`)
    return r
  }
}
