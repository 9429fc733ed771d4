// What every vdrep command shares: --json/--quiet/--verbose, the one place where an error
// becomes a message and an exit code, and whether we may draw (TTY, colour) at all.
import {Command, Errors, Flags} from '@oclif/core'
import chalk from 'chalk'
import {keepFreedMemory} from '../core/native/performance-hints.js'
import {asVdrepError, exitCodeOf, VdrepError} from '../core/errors.js'
import {setStateDir} from '../core/psf/state-location.js'
import {setTraceSink, trace} from '../core/util/trace.js'
import type {PhaseDisplay} from './phase-display.js'
import type {SyncLog} from '../core/sync/progress.js'

export abstract class BaseCommand extends Command {
  static override enableJsonFlag = true

  static override baseFlags = {
    quiet: Flags.boolean({char: 'q', description: 'print nothing but errors', helpGroup: 'GLOBAL'}),
    verbose: Flags.boolean({char: 'v', description: 'print what is being done', helpGroup: 'GLOBAL'}),
  }

  protected globals: {quiet: boolean; verbose: boolean} = {quiet: false, verbose: false}

  override async init(): Promise<void> {
    await super.init()
    // Before any transfer buffer exists: recycled memory instead of page faults (see core/native/performance-hints.ts).
    keepFreedMemory()
    // VDREP_TRACE=1: phase marks on stderr, with the pid (a client and its serve interleave).
    if (process.env.VDREP_TRACE) setTraceSink((line) => process.stderr.write(`vdrep-trace ${process.pid} ${line}\n`))
    trace(`command ${this.id ?? ''} starts`)
    if (process.env.VDREP_TRACE) process.once('exit', () => trace('exit'))
  }

  /** Bars and colour only for a person at a terminal; cron and pipes get plain lines. */
  protected get interactive(): boolean {
    return Boolean(process.stderr.isTTY) && !this.jsonEnabled() && !this.globals.quiet && process.env.TERM !== 'dumb'
  }

  /**
   * Call right after parse(): records --quiet/--verbose, turns colour off where we may not draw,
   * and names the state folder (--state-dir) before any disk is touched.
   */
  protected setGlobals(flags: {quiet?: boolean; verbose?: boolean; 'state-dir'?: string}): void {
    this.globals = {quiet: Boolean(flags.quiet), verbose: Boolean(flags.verbose)}
    if (flags['state-dir'] !== undefined) setStateDir(flags['state-dir'])
    if (!this.interactive) chalk.level = 0
  }

  /** One line for the summary (stdout), unless quiet or JSON. */
  protected say(line: string): void {
    if (!this.globals.quiet && !this.jsonEnabled()) this.log(line)
  }

  /** A failure that does not end the command (one disk of several): stderr, even when quiet; never under --json. */
  protected sayError = (line: string): void => {
    if (!this.jsonEnabled()) this.logToStderr(`vdrep: ${line}`)
  }

  /** Verbose detail goes to stderr so stdout stays one summary line. */
  protected detail = (line: string): void => {
    if (this.globals.verbose && !this.jsonEnabled()) this.logToStderr(`vdrep: ${line}`)
  }

  /**
   * The engine's log for a command that may draw a phase display: notices and details as
   * above, written around the display so it is not torn.
   */
  protected engineLog(display: PhaseDisplay | undefined): SyncLog {
    return (line, level) => {
      const show = () => (level === 'notice' ? this.notice(line) : this.detail(line))
      if (display) display.around(show)
      else show()
    }
  }

  /** Notices the user must see (resuming, falling back) go to stderr unless quiet. */
  protected notice = (line: string): void => {
    if (!this.globals.quiet && !this.jsonEnabled()) this.logToStderr(`vdrep: ${line}`)
  }

  protected override async catch(err: Error & {exitCode?: number}): Promise<unknown> {
    if (err instanceof Errors.ExitError) throw err
    // oclif's own parse errors (unknown flag, missing argument) are usage errors: exit 2.
    const isParse = err instanceof Errors.CLIError && !(err instanceof VdrepError)
    const e: VdrepError = isParse
      ? new VdrepError('USAGE', err.message.replace(/\n\s*See more help.*/s, ''), {hint: `see \`vdrep ${this.id ?? ''} --help\``})
      : asVdrepError(err)
    if (this.jsonEnabled() || process.argv.includes('--json')) {
      process.stdout.write(`${JSON.stringify(e.toJSON())}\n`)
    } else {
      process.stderr.write(`${chalk.red('vdrep: error:')} ${e.message}\n`)
      if (e.hint) process.stderr.write(`vdrep: hint: ${e.hint}\n`)
      if (process.env.VDREP_DEBUG && e.cause) process.stderr.write(`${String((e.cause as Error).stack ?? e.cause)}\n`)
    }
    return this.exit(exitCodeOf(e))
  }
}
