// `vdrep check <disk>`: everything a first push needs, checked one by one before cron finds out
// (checklist.ts): the disk and its .psf here (local.ts), then the target: a local path's
// directory and room (local.ts), or the replica host over SSH (remote.ts). Reads only: nothing
// is written on either host, no host key is added, no lock is taken. The one side effect is a
// push's own: a receiver that is not running is started with the serve command (not from init).
import {parseTarget} from '../target/target.js'
import {timeoutMsOf} from '../psf/settings.js'
import {DEFAULT_TIMEOUT_MS} from '../transport/peer-watchdog.js'
import {asVdrepError} from '../errors.js'
import {Checklist, type CheckReport} from './checklist.js'
import {checkLocalTarget, checkSource} from './local.js'

export type {CheckItem, CheckReport, CheckStatus} from './checklist.js'

export interface CheckOptions {
  /** --timeout for every network step (DNS aside). */
  timeoutMs?: number
  /**
   * When no receiver listens, start one with the serve command as a push would (default), or
   * only say that a push would (init's check: init starts nothing on another host).
   */
  startReceiver?: boolean
  log?: (line: string) => void
}

export async function checkDisk(disk: string, opts: CheckOptions = {}): Promise<CheckReport> {
  const list = new Checklist()
  const header = await checkSource(disk, list)
  if (!header) return {disk, ok: false, checks: list.items}
  const target = parseTarget(header.settings.target)
  try {
    if (target.kind === 'local') await checkLocalTarget(target.path, header, list)
    else {
      // Loaded only for an SSH target, as connect.ts does: ssh2 is start-up time a local check should not pay.
      const {checkSshTarget} = await import('./remote.js')
      await checkSshTarget(target, header, list, {
        timeoutMs: timeoutMsOf(opts.timeoutMs, header.settings) ?? DEFAULT_TIMEOUT_MS,
        startReceiver: opts.startReceiver ?? true,
        log: opts.log,
      })
    }
  } catch (err) {
    // A step that failed in a way its own check did not foresee is a failed check, not a crash.
    const e = asVdrepError(err)
    list.fail('target', `${e.code}: ${e.message}`, e.hint)
  }
  return {disk, target: header.settings.target, ok: !list.failed, checks: list.items}
}
