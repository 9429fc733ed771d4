// --timeout, one flag for every command that talks to a replica host (push, fullsync, verify,
// points, reprotect, check): how long the client waits for anything from it (the login, the
// hello's answer, any frame, keepalives included) before it gives up with exit 13.
import {Flags} from '@oclif/core'
import {UsageError} from '../core/errors.js'
import {DEFAULT_TIMEOUT_MS, MIN_TIMEOUT_MS} from '../core/transport/peer-watchdog.js'
import {formatDuration, parseDuration} from '../core/util/units.js'

export const timeoutFlag = Flags.string({
  description: `give up after this long without a word from the replica host (login, hello, every wait; its receiver sends keepalives while it works), e.g. 90s, 5m; default ${formatDuration(DEFAULT_TIMEOUT_MS / 1000)}`,
})

/** Milliseconds, or undefined for the default; at least MIN_TIMEOUT_MS. */
export function timeoutMs(flag: string | undefined): number | undefined {
  if (flag === undefined) return undefined
  const ms = parseDuration(flag, '--timeout') * 1000
  if (ms < MIN_TIMEOUT_MS)
    throw new UsageError('BAD_DURATION', `--timeout: ${flag} is shorter than ${formatDuration(MIN_TIMEOUT_MS / 1000)}`, {
      hint: 'a receiver sends a keepalive every 5 s; give it at least 10s',
    })
  return ms
}
