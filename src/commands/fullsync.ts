import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {timeoutFlag, timeoutMs} from '../cli/timeout-flag.js'
import {stateDirFlag} from '../cli/state-dir-flag.js'
import {sshCarrierFlag} from '../cli/ssh-carrier-flag.js'
import type {SshCarrier} from '../core/psf/settings.js'
import {createPhaseDisplay} from '../cli/phase-display.js'
import {fullsync, type FullsyncResult} from '../core/fullsync/client.js'
import {withAttemptRecord} from '../core/status/last-attempt.js'
import {fullsyncDryRun, type DryRunResult} from '../core/verify/dry-run.js'
import {renderRanges} from '../cli/render-ranges.js'
import {parseCompress} from '../core/compress/policy.js'
import {wireText} from '../cli/wire-text.js'
import {formatBytes, parseSize} from '../core/util/units.js'
import {UsageError} from '../core/errors.js'
import {loadConfig} from '../core/fleet/config-file.js'
import {runForEachDisk, type FleetRun} from '../core/fleet/run-all.js'
import {allFlags, changeText, failureLines, fleetSummary, refuseOneDiskFlags} from '../cli/fleet-flags.js'

export default class Fullsync extends BaseCommand {
  static override summary = 'Compare the whole disk with the replica by block checksums, send what differs, prove the result.'
  static override examples = [
    '<%= config.bin %> fullsync /vm/web.img',
    '<%= config.bin %> fullsync /vm/web.img --json --bwlimit 50M',
    '<%= config.bin %> fullsync /vm/web.img --dry-run   # what would be sent (blocks, bytes, ranges); nothing is written',
    '<%= config.bin %> fullsync --all --jobs 2   # every disk of /etc/vdrep/vdrep.conf',
  ]
  static override args = {disk: Args.string({description: 'disk initialised with `vdrep init` (or --all)'})}
  static override flags = {
    'state-dir': stateDirFlag,
    ...allFlags,
    ssh: sshCarrierFlag,
    'truncate-replica': Flags.boolean({description: 'allow cutting a replica that is larger than the source'}),
    'take-over-replica': Flags.boolean({
      description: "overwrite a replica that belongs to another source and make it this disk's (refused with exit 10 otherwise)",
    }),
    'discard-replica-changes': Flags.boolean({
      description:
        'overwrite a replica written outside vdrep since its last commit, or open by another program (refused with exit 11 otherwise): its changes are lost',
    }),
    'dry-run': Flags.boolean({
      description: 'compare only: report the blocks, bytes and ranges a full sync would send now; nothing is written on either host',
    }),
    compress: Flags.string({
      description:
        "compression on the wire: 'auto' (measure: compress only where it makes the transfer faster), 'none', or a zstd level 1..19; default: the disk's setting (init --compress)",
    }),
    bwlimit: Flags.string({description: 'cap the bytes sent per second (e.g. 50M)'}),
    'accept-new-host-key': Flags.boolean({description: 'trust and record the replica host key if it is not in known_hosts yet (never a changed one)'}),
    timeout: timeoutFlag,
    'checkpoint-bytes': Flags.string({description: 'make the replica durable and record a resume point this often', hidden: true}),
  }

  async run(): Promise<FullsyncResult | DryRunResult | FleetRun<FullsyncResult>> {
    const {args, flags} = await this.parse(Fullsync)
    this.setGlobals(flags)
    timeoutMs(flags.timeout) // a bad --timeout is a usage error before anything runs
    if (flags.all) {
      refuseOneDiskFlags(flags)
      return this.fullsyncAll(args.disk, flags)
    }
    if (args.disk === undefined) throw new UsageError('USAGE', 'name a disk, or --all for every disk of the config file', {hint: 'see `vdrep fullsync --help`'})
    const disk = args.disk
    if (flags['dry-run']) return this.dryRun(disk, flags)
    const display = this.interactive ? await createPhaseDisplay() : undefined
    let result: FullsyncResult
    try {
      result = await withAttemptRecord(
        disk,
        'fullsync',
        (begun) =>
          fullsync(disk, {
            begun,
            truncateReplica: flags['truncate-replica'],
            takeOverReplica: flags['take-over-replica'],
            discardReplicaChanges: flags['discard-replica-changes'],
            acceptNewHostKey: flags['accept-new-host-key'],
            timeoutMs: timeoutMs(flags.timeout),
            sshCarrier: flags.ssh as SshCarrier | undefined,
            compress: flags.compress === undefined ? undefined : parseCompress(flags.compress),
            bwlimitBytesPerSecond: flags.bwlimit ? parseSize(flags.bwlimit, '--bwlimit') : undefined,
            checkpointBytes: flags['checkpoint-bytes'] ? parseSize(flags['checkpoint-bytes'], '--checkpoint-bytes') : undefined,
            progress: display?.update,
            log: this.engineLog(display),
          }),
        {warn: this.notice},
      )
    } finally {
      display?.stop()
    }
    this.say(summary(result))
    return result
  }

  /** --all: every disk of the config file, --jobs at a time, one line per disk; exit code: the highest of any disk. */
  private async fullsyncAll(
    disk: string | undefined,
    flags: {
      config?: string
      jobs?: number
      'bandwidth-budget'?: string
      bwlimit?: string
      'accept-new-host-key'?: boolean
      'dry-run'?: boolean
      timeout?: string
    },
  ): Promise<FleetRun<FullsyncResult>> {
    if (disk !== undefined) throw new UsageError('USAGE', `--all works on every configured disk: do not name one (${disk})`)
    const config = await loadConfig(flags.config)
    if (!config || config.disks.length === 0)
      throw new UsageError('CONFIG_NO_DISKS', `--all: ${config ? `${config.file} lists no disk` : 'no config file (/etc/vdrep/vdrep.conf)'}`, {
        hint: 'list the disks in /etc/vdrep/vdrep.conf ([[disk]] tables), or name one with --config',
      })
    // Bad flag values stop the run before any disk, not once per disk.
    const bwlimit = flags.bwlimit ? parseSize(flags.bwlimit, '--bwlimit') : undefined
    const budget = flags['bandwidth-budget'] ? parseSize(flags['bandwidth-budget'].replace(/\/s$/i, ''), '--bandwidth-budget') : undefined
    const run = await runForEachDisk(
      config,
      (d, shared) =>
        fullsync(d, {
          acceptNewHostKey: flags['accept-new-host-key'],
          timeoutMs: timeoutMs(flags.timeout),
          bwlimitBytesPerSecond: bwlimit,
          sharedBudget: shared.budget,
          begun: shared.begun,
          log: (line, level) => (level === 'notice' ? this.notice(`${d}: ${line}`) : this.detail(`${d}: ${line}`)),
        }),
      {
        kind: 'fullsync',
        jobs: flags.jobs,
        budgetBytesPerSecond: budget,
        warn: this.notice,
        onApplied: (d, lines) => this.notice(`${d}: settings from ${config.file} written into its .psf (the change record kept): ${changeText(lines)}`),
        onDone: (o) => {
          if (o.ok && o.result) this.say(summary(o.result))
          for (const line of failureLines('fullsync', o)) this.sayError(line)
        },
      },
    )
    this.say(fleetSummary('fullsync', run))
    if (run.exitCode !== 0) {
      if (this.jsonEnabled()) process.stdout.write(`${JSON.stringify(run, null, 2)}\n`)
      this.exit(run.exitCode)
    }
    return run
  }

  /** --dry-run: the comparison only, nothing written (core/verify/dry-run.ts). */
  private async dryRun(
    disk: string,
    flags: {
      'truncate-replica'?: boolean
      'take-over-replica'?: boolean
      'discard-replica-changes'?: boolean
      'accept-new-host-key'?: boolean
      timeout?: string
      ssh?: string
    },
  ): Promise<DryRunResult> {
    const display = this.interactive ? await createPhaseDisplay() : undefined
    let dry: DryRunResult
    try {
      dry = await fullsyncDryRun(disk, {
        truncateReplica: flags['truncate-replica'],
        takeOverReplica: flags['take-over-replica'],
        discardReplicaChanges: flags['discard-replica-changes'],
        acceptNewHostKey: flags['accept-new-host-key'],
        timeoutMs: timeoutMs(flags.timeout),
        sshCarrier: flags.ssh as SshCarrier | undefined,
        onProgress: display && ((done, total) => display.update({phase: 'compare', bytesTotal: total, bytesCompared: done, bytesSent: 0, bytesDurable: 0})),
        log: this.engineLog(display),
      })
    } finally {
      display?.stop()
    }
    this.say(
      `fullsync --dry-run ${dry.disk} -> ${dry.target}: would send ${dry.blocksToSend} block(s) (${formatBytes(dry.bytesToSend)}) and zero ` +
        `${dry.blocksToZero} on the replica (${dry.replicaState}); ${formatBytes(dry.bytesTotal)} compared in ${dry.seconds.toFixed(1)} s, nothing written`,
    )
    for (const line of renderRanges('would', dry.differing)) this.say(line)
    return dry
  }
}

function summary(result: FullsyncResult): string {
  const rate = result.bytesCompared / Math.max(result.seconds, 0.001)
  return (
    `fullsync ${result.disk} -> ${result.target}: ${formatBytes(result.bytesCompared)} compared, ${formatBytes(result.bytesSent)} sent, ` +
    `${formatBytes(result.zeroBytesSkipped)} zero skipped, ${result.blocksDiffering} blocks differed, proved (${result.hashAlgo} ${result.digest.slice(0, 16)}) ` +
    `in ${result.seconds.toFixed(1)} s (${formatBytes(rate)}/s)${result.resumedAtBlock > 0 ? `, resumed at ${result.resumedPercent}%` : ''}${wireText(result.compression, result.wireBytes)}`
  )
}
