// systemd's readiness protocol (sd_notify(3)) for `vdrep track` and `vdrep serve` run as
// Type=notify units: "READY=1" once the export (or the receiver) accepts connections,
// "STATUS=..." for `systemctl status`, "STOPPING=1" at a clean stop. The message is one datagram
// to the AF_UNIX socket named in $NOTIFY_SOCKET; Node cannot send unix datagrams, so the addon
// does (native/sd_notify.cc).
//
// Never pretends: no $NOTIFY_SOCKET means no service manager asked, and nothing is sent; a
// socket named but not written to (no addon, a path that is gone, a refused send) is an
// error, so the unit fails at once instead of systemd believing a service that it was never
// told about (or, worse, being told "ready" by nobody and timing out much later).
import {StateError} from '../errors.js'
import {addon} from './binding.js'

export const NOTIFY_SOCKET_ENV = 'NOTIFY_SOCKET'

export type NotifyOutcome = 'sent' | 'not-under-systemd'

/** Sends one notification; 'not-under-systemd' when none was asked for. Throws SD_NOTIFY_FAILED. */
export function sdNotify(fields: Record<string, string>, env: NodeJS.ProcessEnv = process.env): NotifyOutcome {
  const socket = env[NOTIFY_SOCKET_ENV]
  if (socket === undefined || socket === '') return 'not-under-systemd'
  // A newline inside a value would start another field: STATUS text is one line.
  const message = Object.entries(fields)
    .map(([k, v]) => `${k}=${v.replace(/\n/g, ' ')}`)
    .join('\n')
  const send = addon()?.sdNotify
  if (!send) {
    throw new StateError('SD_NOTIFY_FAILED', `${NOTIFY_SOCKET_ENV} is set (${socket}) but this vdrep has no native addon to write to it`, {
      hint: 'rebuild the addon (npm rebuild vdrep, needs a C++ compiler), or run the unit as Type=simple',
    })
  }
  try {
    send(socket, message)
  } catch (err) {
    throw new StateError('SD_NOTIFY_FAILED', `cannot notify systemd on ${socket}: ${(err as Error).message}`, {cause: err})
  }
  return 'sent'
}
