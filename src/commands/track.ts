import path from 'node:path'
import {Args, Flags} from '@oclif/core'
import cliProgress from 'cli-progress'
import {BaseCommand} from '../cli/base-command.js'
import {stateDirFlag} from '../cli/state-dir-flag.js'
import {fieldPrefix, stderrIsJournal} from '../cli/service-log.js'
import {sdNotify} from '../core/native/sd-notify.js'
import {UsageError} from '../core/errors.js'
import {scanDisk, type ScanProgress, type ScanResult} from '../core/tracker/scan.js'
import {DEFAULT_COW_LIMIT, Tracker, type TrackerStarted, type TrackerStopped} from '../core/tracker/tracker.js'
import {formatBytes, formatDuration, parseSize} from '../core/util/units.js'
import {untilSignal} from '../cli/until-signal.js'

export type TrackResult = ({mode: 'nbd'} & TrackerStarted & {stopped: TrackerStopped}) | ({mode: 'scan'} & ScanResult)

export default class Track extends BaseCommand {
  static override summary = 'Serve the disk over NBD and record every write in <disk>.psf; or, with --scan, find what changed by rehashing.'
  static override description =
    'With --nbd, runs in the foreground until SIGTERM or SIGINT (SIGHUP is ignored: the log is stderr); under systemd (Type=notify) it reports READY=1 only once the export accepts connections. The VM (qemu, or nbd-client) uses the export as its disk, and ' +
    'every write is marked in the change record before it reaches the disk, so a tracker killed with -9 loses nothing. ' +
    'With --scan, rehashes the disk against the block index of the last sync and marks the blocks that differ (local reads only).'
  static override examples = [
    '<%= config.bin %> track /vm/web.img --nbd unix:/run/web.nbd',
    '<%= config.bin %> track /vm/web.img --nbd 127.0.0.1:10809 --cow-limit 4G',
    'qemu-system-x86_64 -drive file=nbd+unix:///web.img?socket=/run/web.nbd,format=raw,cache=none ...',
    '<%= config.bin %> track /vm/web.img --scan',
  ]
  static override args = {disk: Args.string({description: 'disk initialised with `vdrep init`', required: true})}
  static override flags = {
    'state-dir': stateDirFlag,
    nbd: Flags.string({
      description: 'serve NBD here: unix:PATH or HOST:PORT (loopback only unless --listen-any); repeatable',
      multiple: true,
      exclusive: ['scan'],
    }),
    'listen-any': Flags.boolean({
      description: 'allow a non-loopback TCP address (NBD has no authentication: remote peers are served; other local users are still refused)',
    }),
    'cow-limit': Flags.string({description: 'cap of the copy-on-write side file while a push runs', default: formatBytes(DEFAULT_COW_LIMIT).replace(' ', '')}),
    scan: Flags.boolean({description: 'rehash the disk against the block index of the last sync and mark what changed', exclusive: ['nbd']}),
  }

  async run(): Promise<TrackResult> {
    const {args, flags} = await this.parse(Track)
    this.setGlobals(flags)
    if (flags.scan) return this.scan(args.disk)
    if (!flags.nbd || flags.nbd.length === 0) {
      throw new UsageError('TRACK_MODE', 'say where to serve the disk with --nbd unix:PATH or HOST:PORT, or pass --scan', {hint: 'see `vdrep track --help`'})
    }
    const cowLimit = parseSize(flags['cow-limit'], '--cow-limit')
    // Listen for signals before serving: a stop asked for during the start waits for it.
    // logrotate's usual SIGHUP must not stop the VM's disk: the log is stderr, nothing to reopen.
    process.on('SIGHUP', () => {})
    // A third signal quits at once (exit 130), leaving the record as after a crash (trusted, nothing lost).
    const signalled = untilSignal(
      () => this.notice('stopping: finishing the requests in flight'),
      () => this.notice('still stopping cleanly; send the signal once more to quit at once'),
    )
    // Under systemd each journal line names the disk (many trackers share one journal).
    if (stderrIsJournal()) this.linePrefix = fieldPrefix({disk: path.resolve(args.disk)})
    const tracker = await Tracker.start(args.disk, {
      listen: flags.nbd,
      listenAny: flags['listen-any'],
      cowLimit,
      log: (level, line) => this.trackerLog(level, line),
    })
    const s = tracker.started
    try {
      // Type=notify: ready only now that every export listens; a unit that cannot be told fails instead.
      sdNotify({READY: '1', STATUS: `tracking ${s.disk}: NBD on ${s.nbd.join(' and ')}`})
    } catch (err) {
      await tracker.stop()
      throw err
    }
    const full = s.needsFullSync
      ? ' (a full sync is still needed before pushes send deltas)'
      : s.verifying
        ? ' (checking the disk against the block hash index first; pushes wait for it)'
        : ''
    this.say(
      `tracking ${s.disk}: NBD export "${s.exportName}" on ${s.nbd.join(' and ')}; ${s.dirtyBlocks} blocks pending ` +
        `(${formatBytes(s.bytesPending)}); control socket ${s.controlSocket}${full}`,
    )
    await signalled
    try {
      sdNotify({STOPPING: '1', STATUS: 'stopping: finishing the requests in flight'})
    } catch (err) {
      this.trackerLog('warn', (err as Error).message)
    }
    const stopped = await tracker.stop()
    this.say(
      `stopped tracking ${stopped.disk} ${stopped.clean ? 'cleanly' : 'UNCLEANLY (the record is kept as after a crash)'} after ${formatDuration(Math.max(1, Math.round(stopped.seconds)))}: ` +
        `${stopped.writes} writes (${formatBytes(stopped.bytesWritten)}), ${stopped.zeroes} zeroes, ${stopped.trims} trims; ` +
        `${stopped.dirtyBlocks} blocks pending (${formatBytes(stopped.bytesPending)})`,
    )
    return {mode: 'nbd', ...s, stopped}
  }

  /** Warnings reach stderr even under --quiet or --json; notices unless quiet; debug with -v. */
  private trackerLog(level: 'warn' | 'info' | 'debug', text: string): void {
    const line = `${this.linePrefix}${text}`
    if (level === 'warn') this.logToStderr(`vdrep: warning: ${line}`)
    else if (level === 'info') this.notice(line)
    else this.detail(line)
  }

  /** `disk=... ` under systemd's journal, else nothing. */
  private linePrefix = ''

  private async scan(disk: string): Promise<TrackResult> {
    const bar = this.interactive ? scanBar() : undefined
    let result: ScanResult
    try {
      result = await scanDisk(disk, {
        progress: bar?.update,
        log: (level, line) => this.trackerLog(level, line),
      })
    } finally {
      bar?.stop()
    }
    const rate = result.bytesScanned / Math.max(result.seconds, 0.001)
    this.say(
      `scanned ${result.disk}: ${result.blocksScanned} blocks (${formatBytes(result.bytesScanned)}) in ${result.seconds.toFixed(1)} s (${formatBytes(rate)}/s); ` +
        `${result.blocksMarked} changed since the last sync (${result.blocksNewlyMarked} newly marked); ` +
        `${result.dirtyBlocks} blocks pending (${formatBytes(result.bytesPending)})`,
    )
    return {mode: 'scan', ...result}
  }
}

function scanBar(): {update: (p: ScanProgress) => void; stop: () => void} {
  const bar = new cliProgress.SingleBar(
    {
      format: 'scan [{bar}] {percentage}% | {done} of {total} | {marked} changed | ETA {eta_formatted}',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  )
  let running = false
  return {
    update(p) {
      const payload = {done: formatBytes(p.bytesDone), total: formatBytes(p.bytesTotal), marked: p.blocksMarked}
      if (!running) {
        bar.start(p.bytesTotal, p.bytesDone, payload)
        running = true
      } else bar.update(p.bytesDone, payload)
    },
    stop() {
      if (running) bar.stop()
    },
  }
}
