import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {stateDirFlag} from '../cli/state-dir-flag.js'
import {createPhaseDisplay} from '../cli/phase-display.js'
import {push, type PushResult} from '../core/delta/push.js'
import {withAttemptRecord} from '../core/status/last-attempt.js'
import type {LogLevel} from '../core/sync/progress.js'
import {parseCompress} from '../core/compress/policy.js'
import {wireText} from '../cli/wire-text.js'
import {formatBytes, parseSize} from '../core/util/units.js'

export default class Push extends BaseCommand {
  static override summary =
    'Ship the blocks changed since the last sync as one bundle; fall back to a full sync (and say why) when the change record cannot be trusted.'
  static override description = `Quiet and cron-safe: without a TTY it prints one summary line. Exit codes: 0 pushed (or not due), 3 another push or full sync of this disk runs, 4 a full sync is needed and --no-fallback was given, 7 the connection failed or was cut (the blocks go back to the change record), 9 the replica filesystem is full, 10 the replica belongs to another source, 11 the replica was written outside vdrep or is open by another program (never overwritten by the fallback: it takes --take-over-replica or --discard-replica-changes).`
  static override examples = ['<%= config.bin %> push /vm/web.img', '* * * * * <%= config.bin %> push --if-due /vm/web.img   (crontab)']
  static override args = {disk: Args.string({description: 'disk initialised with `vdrep init`', required: true})}
  static override flags = {
    'state-dir': stateDirFlag,
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
    'truncate-replica': Flags.boolean({description: 'accept a source that shrank: run the full sync that cuts the replica to its size'}),
    'take-over-replica': Flags.boolean({
      description: "a replica that belongs to another source: run the full sync that makes it this disk's (refused with exit 10 otherwise)",
    }),
    final: Flags.boolean({
      description:
        'the last push before a planned failover: refused while a tracker runs (shut the VM down and stop the tracker first); the replica records the handover, so `vdrep failover --planned` accepts it',
    }),
    'discard-replica-changes': Flags.boolean({
      description: 'a replica written outside vdrep or open by another program: run the full sync that overwrites it (refused with exit 11 otherwise)',
    }),
  }

  async run(): Promise<PushResult> {
    const {args, flags} = await this.parse(Push)
    this.setGlobals(flags)
    const display = this.interactive ? await createPhaseDisplay() : undefined
    let result: PushResult
    try {
      // Every attempt's outcome goes into the disk's state: `status` shows a failing push before the RPO runs out.
      result = await withAttemptRecord(
        args.disk,
        'push',
        () =>
          push(args.disk, {
            ifDue: flags['if-due'],
            noFallback: flags['no-fallback'],
            compress: flags.compress === undefined ? undefined : parseCompress(flags.compress),
            bwlimitBytesPerSecond: flags.bwlimit ? parseSize(flags.bwlimit, '--bwlimit') : undefined,
            preHook: flags['pre-hook'],
            postHook: flags['post-hook'],
            acceptNewHostKey: flags['accept-new-host-key'],
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

  /** The engine says how much a line matters; the command never guesses from its text. */
  private pushLog(line: string, level?: LogLevel): void {
    if (level === 'notice') this.notice(line)
    else this.detail(line)
  }
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
