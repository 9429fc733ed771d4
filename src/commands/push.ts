import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {timeoutFlag, timeoutMs} from '../cli/timeout-flag.js'
import {stateDirFlag} from '../cli/state-dir-flag.js'
import {sshCarrierFlag} from '../cli/ssh-carrier-flag.js'
import type {SshCarrier} from '../core/psf/settings.js'
import {createPhaseDisplay} from '../cli/phase-display.js'
import {push, type PushResult} from '../core/delta/push.js'
import {beginAttempt, recordAttempt, withAttemptRecord} from '../core/status/last-attempt.js'
import {pushGroup, type GroupPushResult} from '../core/group/push-group.js'
import {UsageError} from '../core/errors.js'
import type {LogLevel} from '../core/sync/progress.js'
import {formatBytes, parseDuration, parseSize} from '../core/util/units.js'
import {loadConfig} from '../core/fleet/config-file.js'
import {runForEachDisk, type FleetRun} from '../core/fleet/run-all.js'
import {allFlags, changeText, failureLines, fleetSummary, refuseOneDiskFlags} from '../cli/fleet-flags.js'
import {groupMembersFromConfig} from '../core/group/config-members.js'
import {parseCompress} from '../core/compress/policy.js'
import {wireText} from '../cli/wire-text.js'

export default class Push extends BaseCommand {
  static override summary =
    'Ship the blocks changed since the last sync as one bundle; fall back to a full sync (and say why) when the change record cannot be trusted.'
  static override description = `Quiet and cron-safe: without a TTY it prints one summary line. Exit codes: 0 pushed (or not due), 3 another push or full sync of this disk runs, 4 a full sync is needed and --no-fallback was given, 7 the connection failed or was cut (the blocks go back to the change record), 9 the replica filesystem is full, 10 the replica belongs to another source, 11 the replica was written outside vdrep or is open by another program (never overwritten by the fallback: it takes --take-over-replica or --discard-replica-changes), 13 the replica host sent nothing within --timeout (stopped or hung; the lock is released and the blocks go back to the change record).

With --all: every disk the config file lists (/etc/vdrep/vdrep.conf, $VDREP_CONFIG or --config), --jobs at a time under one shared --bandwidth-budget; each disk's settings from the file are written into its .psf in place first (a target naming another replica is refused for that disk: vdrep config DISK target NEW). One line per disk; one disk's failure does not stop the others; the exit code is the highest exit code of any disk.`
  static override examples = [
    '<%= config.bin %> push /vm/web.img',
    '* * * * * <%= config.bin %> push --if-due /vm/web.img   (crontab)',
    '<%= config.bin %> push --all --if-due --jobs 2   # every disk of /etc/vdrep/vdrep.conf',
    '<%= config.bin %> push --group db /vm/db-data.img /vm/db-log.img   (one point in time across both)',
  ]
  static override args = {disk: Args.string({description: 'disk initialised with `vdrep init` (or --all; with --group: every member)'})}
  // --group takes the members as further arguments.
  static override strict = false
  static override flags = {
    'state-dir': stateDirFlag,
    ...allFlags,
    ssh: sshCarrierFlag,
    'if-due': Flags.boolean({description: 'push only when the next push is due for the RPO (for a cron line that runs every minute)'}),
    'no-fallback': Flags.boolean({description: 'exit with code 4 instead of running a full sync when the change record cannot be trusted'}),
    compress: Flags.string({
      description:
        "compression on the wire: 'auto' (measure: compress only where it makes the transfer faster), 'none', or a zstd level 1..19; default: the disk's setting (init --compress)",
    }),
    bwlimit: Flags.string({description: 'cap the bytes sent per second (e.g. 50M)'}),
    'pre-hook': Flags.string({description: 'command run just before the point in time (e.g. freeze the guest file systems)'}),
    'post-hook': Flags.string({description: 'command run just after the point in time (e.g. thaw them)'}),
    'accept-new-host-key': Flags.boolean({description: 'trust and record an unknown replica host key (never a changed one)'}),
    timeout: timeoutFlag,
    'truncate-replica': Flags.boolean({description: 'accept a source that shrank: run the full sync that cuts the replica to its size'}),
    'take-over-replica': Flags.boolean({
      description: "a replica that belongs to another source: run the full sync that makes it this disk's (refused with exit 10 otherwise)",
    }),
    final: Flags.boolean({
      description:
        'the last push before a planned failover: refused while a tracker runs (shut the VM down and stop the tracker first); the replica records the handover, so `vdrep failover --planned` accepts it',
    }),
    group: Flags.string({
      description:
        'a consistency group: one point in time across every disk given (each needs a running tracker), committed on the replica host as a unit (all members or none)',
    }),
    'cut-timeout': Flags.string({description: 'with --group: how long a member tracker may take to hold its writes for the cut (default 5s)'}),
    'discard-replica-changes': Flags.boolean({
      description: 'a replica written outside vdrep or open by another program: run the full sync that overwrites it (refused with exit 11 otherwise)',
    }),
  }

  async run(): Promise<PushResult | FleetRun<PushResult> | GroupPushResult> {
    const {args, argv, flags} = await this.parse(Push)
    this.setGlobals(flags)
    timeoutMs(flags.timeout) // a bad --timeout is a usage error before anything runs
    if (flags.group !== undefined) {
      if (flags.all) throw new UsageError('USAGE', '--group and --all: push a group with --group alone')
      return this.runGroup(flags.group, argv as string[], flags)
    }
    if (argv.length > 1)
      throw new UsageError('BAD_ARGUMENT', `push takes one disk; ${argv.length} were given`, {
        hint: 'give --group NAME to push several disks at one point in time',
      })
    if (flags.all) {
      refuseOneDiskFlags(flags)
      return this.pushAll(args.disk, flags)
    }
    if (args.disk === undefined) throw new UsageError('USAGE', 'name a disk, or --all for every disk of the config file', {hint: 'see `vdrep push --help`'})
    const disk = args.disk
    const display = this.interactive ? await createPhaseDisplay() : undefined
    let result: PushResult
    try {
      // Every attempt's outcome goes into the disk's state: `status` shows a failing push before the RPO runs out.
      result = await withAttemptRecord(
        disk,
        'push',
        (begun) =>
          push(disk, {
            begun,
            ifDue: flags['if-due'],
            noFallback: flags['no-fallback'],
            compress: flags.compress === undefined ? undefined : parseCompress(flags.compress),
            bwlimitBytesPerSecond: flags.bwlimit ? parseSize(flags.bwlimit, '--bwlimit') : undefined,
            preHook: flags['pre-hook'],
            postHook: flags['post-hook'],
            acceptNewHostKey: flags['accept-new-host-key'],
            timeoutMs: timeoutMs(flags.timeout),
            sshCarrier: flags.ssh as SshCarrier | undefined,
            truncateReplica: flags['truncate-replica'],
            takeOverReplica: flags['take-over-replica'],
            discardReplicaChanges: flags['discard-replica-changes'],
            final: flags.final,
            log: (line, level) => (display ? display.around(() => this.pushLog(line, level)) : this.pushLog(line, level)),
            progress: display?.update,
          }),
        {skipped: (r) => r.mode === 'skipped', warn: this.notice},
      )
    } finally {
      display?.stop()
    }
    // A push that was not due says nothing without a terminal (unless --verbose): cron mails
    // whatever a job prints, and `push --if-due` runs every minute.
    if (result.mode !== 'skipped' || process.stdout.isTTY || this.globals.verbose) this.say(summary(result))
    return result
  }

  private async runGroup(
    group: string,
    named: string[],
    flags: {
      bwlimit?: string
      compress?: string
      'pre-hook'?: string
      'post-hook'?: string
      'cut-timeout'?: string
      'accept-new-host-key'?: boolean
      config?: string
    },
  ): Promise<GroupPushResult> {
    // No disk named: the members are the config file's disks of that group.
    const config = named.length === 0 ? await loadConfig(flags.config) : null
    const disks = config ? groupMembersFromConfig(config, group).map((m) => m.disk) : named
    if (disks.length === 0)
      throw new UsageError('BAD_ARGUMENT', `push --group ${group}: name its disks, or list them with group = "${group}" in the config file`)
    const display = this.interactive ? await createPhaseDisplay() : undefined
    let result: GroupPushResult
    try {
      result = await pushGroup(
        group,
        disks.map((disk) => ({disk})),
        {
          bwlimitBytesPerSecond: flags.bwlimit ? parseSize(flags.bwlimit, '--bwlimit') : undefined,
          compress: flags.compress === undefined ? undefined : parseCompress(flags.compress),
          memberBegun: (disk) => beginAttempt(disk, 'push', this.notice),
          preHook: flags['pre-hook'],
          postHook: flags['post-hook'],
          acceptNewHostKey: flags['accept-new-host-key'],
          cutTimeoutMs: flags['cut-timeout'] ? parseDuration(flags['cut-timeout'], '--cut-timeout') * 1000 : undefined,
          log: (line, level) => (display ? display.around(() => this.pushLog(line, level)) : this.pushLog(line, level)),
          progress: display?.update,
        },
      )
    } catch (err) {
      for (const disk of disks) await recordAttempt(disk, 'push', {ok: false, error: err}, {warn: this.notice})
      throw err
    } finally {
      display?.stop()
    }
    for (const disk of disks) await recordAttempt(disk, 'push', {ok: true}, {warn: this.notice})
    const members = result.members.map((m) => `${m.disk} sequence ${m.seq} (${m.blocks} blocks)`).join(', ')
    this.say(
      `push --group ${group}: point ${result.groupSeq} committed: ${members}; writes held ${result.heldMs} ms for the cut; ${result.seconds.toFixed(2)} s`,
    )
    return result
  }

  /**
   * --all: every disk of the config file, --jobs at a time, one line per disk as it ends (a
   * disk that was not due says nothing without a TTY, as a single push does); exit code: the
   * highest of any disk.
   */
  private async pushAll(disk: string | undefined, flags: PushFlags): Promise<FleetRun<PushResult>> {
    if (disk !== undefined) throw new UsageError('USAGE', `--all pushes every configured disk: do not name one (${disk})`)
    const config = await loadConfig(flags.config)
    if (!config || config.disks.length === 0)
      throw new UsageError('CONFIG_NO_DISKS', `--all: ${config ? `${config.file} lists no disk` : 'no config file (/etc/vdrep/vdrep.conf)'}`, {
        hint: 'list the disks in /etc/vdrep/vdrep.conf ([[disk]] tables), or name one with --config',
      })
    const quietSkip = !process.stdout.isTTY && !this.globals.verbose
    const skipped = (r: PushResult) => r.mode === 'skipped'
    // Bad flag values stop the run before any disk, not once per disk.
    const bwlimit = flags.bwlimit ? parseSize(flags.bwlimit, '--bwlimit') : undefined
    const budget = flags['bandwidth-budget'] ? parseSize(flags['bandwidth-budget'].replace(/\/s$/i, ''), '--bandwidth-budget') : undefined
    const run = await runForEachDisk(
      config,
      (d, shared) =>
        push(d, {
          ifDue: flags['if-due'],
          noFallback: flags['no-fallback'],
          bwlimitBytesPerSecond: bwlimit,
          sharedBudget: shared.budget,
          begun: shared.begun,
          preHook: flags['pre-hook'],
          postHook: flags['post-hook'],
          acceptNewHostKey: flags['accept-new-host-key'],
          timeoutMs: timeoutMs(flags.timeout),
          log: (line, level) => this.pushLog(`${d}: ${line}`, level),
        }),
      {
        kind: 'push',
        jobs: flags.jobs,
        budgetBytesPerSecond: budget,
        skipped,
        warn: this.notice,
        onApplied: (d, lines) => this.notice(`${d}: settings from ${config.file} written into its .psf (the change record kept): ${changeText(lines)}`),
        onDone: (o) => {
          if (o.ok && o.result && !(skipped(o.result) && quietSkip)) this.say(summary(o.result))
          for (const line of failureLines('push', o)) this.sayError(line)
        },
      },
    )
    if (!run.disks.every((d) => d.ok && d.result && skipped(d.result)) || !quietSkip || run.exitCode !== 0) this.say(fleetSummary('push', run, skipped))
    if (run.exitCode !== 0) {
      if (this.jsonEnabled()) process.stdout.write(`${JSON.stringify(run, null, 2)}\n`)
      this.exit(run.exitCode)
    }
    return run
  }

  /** The engine says how much a line matters; the command never guesses from its text. */
  private pushLog(line: string, level?: LogLevel): void {
    if (level === 'notice') this.notice(line)
    else this.detail(line)
  }
}

type PushFlags = {
  config?: string
  jobs?: number
  'bandwidth-budget'?: string
  'if-due'?: boolean
  'no-fallback'?: boolean
  bwlimit?: string
  'pre-hook'?: string
  'post-hook'?: string
  'accept-new-host-key'?: boolean
  timeout?: string
}

function summary(r: PushResult): string {
  if (r.mode === 'skipped') return `push ${r.disk}: ${r.reason}`
  if (r.mode === 'fullsync') {
    const f = r.fullsync
    return `push ${r.disk} -> ${r.target}: full sync instead (${r.reason}): ${f ? `${formatBytes(f.bytesCompared)} compared, ${formatBytes(f.bytesSent)} sent, proved` : 'done'} in ${r.seconds.toFixed(1)} s`
  }
  const v = r.verified ? `; checked locally first, ${r.verified.blocksNewlyMarked} unmarked blocks found changed` : ''
  return `push ${r.disk} -> ${r.target}: sequence ${r.seq} committed${r.final ? ' (final: handed over)' : ''}, ${r.blocks} blocks (${formatBytes(r.bytesSent)} sent${r.zeroBlocks ? `, ${r.zeroBlocks} zero` : ''}) in ${r.seconds.toFixed(2)} s${v}${wireText(r.compression, r.wireBytes)}`
}
