import {Args, Flags} from '@oclif/core'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {BaseCommand} from '../cli/base-command.js'
import {stateDirFlag} from '../cli/state-dir-flag.js'
import {sshCarrierFlag} from '../cli/ssh-carrier-flag.js'
import type {SshCarrier} from '../core/psf/settings.js'
import {namedStateDir} from '../core/psf/state-location.js'
import {HASH_ALGO_NAMES, parseHashAlgo} from '../core/hash/block-hash.js'
import {cronLine, initDisk, systemdLines, type InitResult} from '../core/init.js'
import {binPath} from '../core/locations.js'
import {parseCompress} from '../core/compress/policy.js'
import {formatBytes, formatDuration, parseDuration, parseSize} from '../core/util/units.js'
import {renderChecks} from '../cli/render-checks.js'
import {timeoutMs} from '../cli/timeout-flag.js'
import {checkDisk, type CheckReport} from '../core/check/check.js'
import {exitCodeOfCode} from '../core/errors.js'
import {parseTarget} from '../core/target/target.js'

export default class Init extends BaseCommand {
  static override summary = 'Create <disk>.psf with the replication settings and print the cron line (or the systemctl lines of the systemd timer) to use.'
  static override examples = [
    '<%= config.bin %> init /vm/web.img --to /mnt/replica/web.img',
    '<%= config.bin %> init /vm/db.img --to backup@dr1:/srv/replicas/db.img --rpo 5m --block-size 64k',
  ]
  static override args = {disk: Args.string({description: 'raw disk image, flat VMDK extent or block device', required: true})}
  static override flags = {
    'state-dir': stateDirFlag,
    to: Flags.string({description: 'replica: /local/path or [user@]host[:sshport]:/path', required: true}),
    'block-size': Flags.string({description: 'tracking and comparison granularity (power of two, 4k..4M)', default: '64k'}),
    rpo: Flags.string({description: 'recovery point objective (5m..24h)', default: '15m'}),
    hash: Flags.string({description: 'block hash', options: [...HASH_ALGO_NAMES]}),
    force: Flags.boolean({description: 'replace an existing .psf (the next sync will be a full sync)'}),
    ssh: sshCarrierFlag,
    identity: Flags.string({description: 'SSH identity file (repeatable)', multiple: true}),
    'known-hosts': Flags.string({description: 'known_hosts file to verify the replica host against'}),
    'fullsync-port': Flags.integer({description: 'receiver full-sync port on the replica host', min: 1, max: 65535}),
    'delta-port': Flags.integer({description: 'receiver delta port on the replica host', min: 1, max: 65535}),
    'serve-command': Flags.string({description: 'remote command that starts the receiver when none listens'}),
    compress: Flags.string({description: "compression on the wire for push and fullsync: 'auto', 'none' or a zstd level 1..19", default: 'auto'}),
    retention: Flags.string({
      description:
        'restore-point retention for the replica (e.g. 1h:all,24h:hourly,count:48,bytes:10%, or off), handed to the replica host after the first full sync; a policy set there since is kept',
    }),
    group: Flags.string({description: 'consistency group of this disk: `push --group NAME` takes one point in time across its members'}),
    'al-extents': Flags.integer({
      description: 'activity log: hot extents kept (a write into a cold one waits for one small durable update); default 2026',
      min: 1,
      max: 65535,
    }),
    'al-extent-size': Flags.string({description: 'activity log: extent size (power of two, block size..1G); default 4M'}),
    check: Flags.boolean({
      description:
        'SSH targets: after writing the .psf, run `vdrep check` (default: its failures are printed as warnings); --check makes a failed check fail init (exit 1, the .psf kept), --no-check skips it',
      allowNo: true,
    }),
    timeout: Flags.string({
      description:
        "how long every later command waits for the replica host (recorded in the .psf; a command's own --timeout wins), and the timeout of init's check; default 2m",
    }),
  }

  async run(): Promise<InitResult & {cron: string; systemd: string[]; check?: CheckReport}> {
    const {args, flags} = await this.parse(Init)
    this.setGlobals(flags)
    timeoutMs(flags.timeout) // a bad --timeout is a usage error before the .psf is written
    const ssh = {
      ...(flags.identity ? {identityFiles: flags.identity.map((f) => path.resolve(f))} : {}),
      ...(flags['known-hosts'] ? {knownHostsFile: path.resolve(flags['known-hosts'])} : {}),
      ...(flags['serve-command'] ? {serveCommand: flags['serve-command']} : {}),
      ...(flags.ssh ? {carrier: flags.ssh as SshCarrier} : {}),
    }
    const result = await initDisk(args.disk, {
      target: flags.to,
      blockSize: parseSize(flags['block-size'], '--block-size'),
      rpoSeconds: parseDuration(flags.rpo, '--rpo'),
      hashAlgo: flags.hash ? parseHashAlgo(flags.hash) : undefined,
      force: flags.force,
      fullsyncPort: flags['fullsync-port'],
      deltaPort: flags['delta-port'],
      ssh,
      retention: flags.retention,
      timeoutSeconds: flags.timeout === undefined ? undefined : (timeoutMs(flags.timeout) as number) / 1000,
      group: flags.group,
      compress: parseCompress(flags.compress),
      alExtents: flags['al-extents'],
      alExtentBytes: flags['al-extent-size'] === undefined ? undefined : parseSize(flags['al-extent-size'], '--al-extent-size'),
    })
    const entry = fileURLToPath(binPath())
    const cron = cronLine(result.disk, process.execPath, entry, namedStateDir())
    this.say(
      `initialised ${result.psf}: ${formatBytes(result.diskSize)} disk, target ${result.target}, block size ${formatBytes(result.blockSize)}, RPO ${formatDuration(result.rpoSeconds)}, hash ${result.hashAlgo}, activity log ${result.activityLog.extents} x ${formatBytes(result.activityLog.extentBytes)}`,
    )
    this.say(`next: vdrep fullsync ${result.disk}`)
    this.say(`cron line (crontab -e):\n${cron}`)
    const systemd = systemdLines(result.disk, namedStateDir())
    this.say(`or a systemd timer (the units in ${unitsFolder()}, installed in /etc/systemd/system):\n${systemd.join('\n')}`)
    const check = await this.firstRunCheck(result.disk, result.target, flags.check, timeoutMs(flags.timeout))
    return {...result, cron, systemd, ...(check ? {check} : {})}
  }

  /**
   * Over SSH, what the first push will need is checked now, while the user is here: failures
   * are warnings (the .psf is written and right; the replica host may be set up next), unless
   * --check asked for them to fail init.
   */
  private async firstRunCheck(disk: string, target: string, flag: boolean | undefined, timeout: number | undefined): Promise<CheckReport | undefined> {
    if (flag === false || parseTarget(target).kind !== 'ssh') return undefined
    const report = await checkDisk(disk, {timeoutMs: timeout, startReceiver: false, log: this.detail})
    const bad = report.checks.filter((c) => c.status === 'fail' || c.status === 'warn')
    if (bad.length === 0) this.say(`check: all ${report.checks.length} checks passed (vdrep check ${disk})`)
    else for (const line of renderChecks(bad, false)) this.notice(`check: ${line.trim()}`)
    if (!report.ok && flag === true) {
      if (this.jsonEnabled()) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`)
      this.exit(exitCodeOfCode('CHECK_FAILED'))
    }
    return report
  }
}

/** The shipped units (package folder systemd/), where this vdrep is installed. */
function unitsFolder(): string {
  return fileURLToPath(new URL('../systemd/', binPath()))
}
