import {Args} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {renderChecks} from '../cli/render-checks.js'
import {stateDirFlag} from '../cli/state-dir-flag.js'
import {timeoutFlag, timeoutMs} from '../cli/timeout-flag.js'
import {checkDisk, type CheckReport} from '../core/check/check.js'
import {exitCodeOfCode} from '../core/errors.js'

export default class Check extends BaseCommand {
  static override summary = 'Check everything a push of this disk needs, one line per check, each failure saying what to fix.'
  static override description = `Reads only: the disk and its .psf; for a local target, the replica's directory and its room; for an SSH target, that the host resolves and its SSH port answers, that its host key is in known_hosts (if not, the key's fingerprint and the line to add: never added here), that the login works, that a vdrep receiver answers on both ports (started with the serve command when none runs, as a push would), that the replica path is under the receiver's root and not another source's replica, and that the replica's filesystem has room for the disk. Exit 0 when no check failed (warnings allowed), 1 otherwise; --json prints the checks.`
  static override examples = ['<%= config.bin %> check /vm/web.img', '<%= config.bin %> check /vm/web.img --json']
  static override args = {disk: Args.string({description: 'disk initialised with `vdrep init`', required: true})}
  static override flags = {
    'state-dir': stateDirFlag,
    timeout: timeoutFlag,
  }

  async run(): Promise<CheckReport> {
    const {args, flags} = await this.parse(Check)
    this.setGlobals(flags)
    const report = await checkDisk(args.disk, {timeoutMs: timeoutMs(flags.timeout), log: this.detail})
    if (!this.jsonEnabled() && !this.globals.quiet) for (const line of renderChecks(report.checks, this.interactive)) this.log(line)
    if (!report.ok) {
      // A failed check is the command's answer, not an error: the checks (or their JSON) are printed first.
      if (this.jsonEnabled()) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`)
      else if (this.globals.quiet)
        for (const line of renderChecks(
          report.checks.filter((c) => c.status === 'fail'),
          false,
        ))
          this.logToStderr(line)
      this.exit(exitCodeOfCode('CHECK_FAILED'))
    }
    return report
  }
}
