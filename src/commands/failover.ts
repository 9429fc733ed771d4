import {Args, Flags, type Interfaces} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {settingsFromFlags, targetFlags} from '../cli/target-flags.js'
import {UsageError} from '../core/errors.js'
import {failover, type FailoverResult} from '../core/failover/failover.js'
import {failoverGroup, type GroupFailoverResult} from '../core/group/failover-group.js'
import {replicaFromArg} from '../core/points/settings.js'

export default class Failover extends BaseCommand {
  static override summary =
    'Promote a replica to a source on the replica host: fenced against its old source, optionally rolled back to a kept point, given its own change record.'
  static override description = `Run on the replica host. --planned needs a final push from the primary first (\`vdrep push <disk> --final\`, its VM shut down); without it --force is needed, and the seconds of writes that may be lost (since the last commit) are reported. --at SEQ first rolls the replica back to that kept restore point (in place; a killed rollback is resumed by running failover again). From then on every push or full sync of the old source is refused with exit 12 (REPLICA_PROMOTED), whatever its flags. The promoted disk gets <replica>.psf, so \`vdrep track <replica> --nbd ...\` can serve it at once and \`vdrep reprotect\` fails back by delta.`
  static override examples = [
    '<%= config.bin %> failover web.img --root /srv/replicas --planned',
    '<%= config.bin %> failover /srv/replicas/web.img --force --to root@primary:/vm/web.img',
    '<%= config.bin %> failover web.img --root /srv/replicas --at 41 --force',
    '<%= config.bin %> failover --group db --root /srv/replicas --force',
    '<%= config.bin %> failover --group db --root /srv/replicas --at 12 --force',
  ]
  static override args = {replica: Args.string({description: 'the replica file (under --root when given); none with --group'})}
  static override flags = {
    ...targetFlags,
    root: Flags.string({description: 'resolve the replica under this root, as `vdrep serve --root` does'}),
    at: Flags.integer({description: 'roll back to this kept restore point first (see `vdrep points`); with --group, the group point', min: 0}),
    group: Flags.string({
      description:
        'fail over every member of this consistency group at one group point (the newest restorable, or --at); each member is checked before the first is promoted',
    }),
    planned: Flags.boolean({description: 'the primary did a final push (`vdrep push --final`): refused unless the last commit was that push'}),
    force: Flags.boolean({description: 'fail over although the last commit was not final (writes since it may be lost), or the replica is diverged'}),
    to: Flags.string({description: 'the old primary disk, [user@]host[:port]:/path, where `vdrep reprotect` will send (it can also be given then)'}),
  }

  async run(): Promise<FailoverResult | GroupFailoverResult> {
    const {args, flags} = await this.parse(Failover)
    this.setGlobals(flags)
    if (flags.group !== undefined) return this.group(flags.group, args.replica, flags)
    if (args.replica === undefined) throw new UsageError('USAGE', 'name the replica to fail over (or --group NAME --root DIR)')
    const replica = await replicaFromArg(args.replica, flags.root)
    const r = await failover(replica, {
      at: flags.at,
      planned: flags.planned,
      force: flags.force,
      to: flags.to,
      settings: settingsFromFlags(flags),
      log: this.detail,
    })
    this.say(summary(r))
    return r
  }

  private async group(group: string, replica: string | undefined, flags: Interfaces.InferredFlags<typeof Failover.flags>): Promise<GroupFailoverResult> {
    if (replica !== undefined) throw new UsageError('USAGE', '--group names the members: give no replica beside it')
    if (flags.root === undefined) throw new UsageError('USAGE', '--group needs --root (the receiver root that holds the group records)')
    if (flags.to !== undefined) throw new UsageError('USAGE', "--to names one old primary: give it to each member's `vdrep reprotect` instead")
    const r = await failoverGroup({
      root: flags.root,
      group,
      groupSeq: flags.at,
      planned: flags.planned,
      force: flags.force,
      settings: settingsFromFlags(flags),
      log: this.detail,
    })
    for (const m of r.members) this.say(summary(m))
    this.say(
      `failover --group ${group}: ${r.members.length} members promoted${r.groupSeq === undefined ? ' at their final pushes' : ` at group point ${r.groupSeq}`}`,
    )
    return r
  }
}

function summary(r: FailoverResult): string {
  const back = r.rolledBackTo !== undefined ? `, rolled back to point ${r.rolledBackTo} (${r.undoneBlocks} blocks)` : ''
  const loss =
    r.planned && r.rolledBackTo !== undefined
      ? `planned, and rolled back on purpose: the writes after point ${r.rolledBackTo} are not on it`
      : r.planned
        ? 'planned: nothing lost'
        : `unplanned: writes of up to ${r.lossWindowSeconds} s before the failover may be lost`
  return `failover ${r.replica}: promoted${r.resumed ? ' (finished an earlier run)' : ''}, epoch ${r.epoch}, at sequence ${r.atSeq}${back}; ${loss}; record ${r.psf}`
}
