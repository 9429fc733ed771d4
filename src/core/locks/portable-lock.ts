// The lock vdrep takes when the kernel's flock and OFD locks are out of reach (no addon, or
// VDREP_NO_NATIVE=1): a listening unix socket bound to a name in Linux's abstract namespace.
// Binding a name is exclusive (a second bind fails with EADDRINUSE, in this process or any
// other), and the kernel unbinds it when the socket closes, also when its holder is killed.
// So, like flock, it really excludes and a dead holder's lock is free at once, without the
// races of a lock file with a pid in it (two takers that both judge a holder dead).
//
// Limits, said where the lock is chosen (exclusive-lock.ts): the abstract namespace belongs
// to a network namespace, so processes in two of them (containers sharing a folder) do not
// exclude each other; any local user can bind a name first (that refuses vdrep, it never lets
// two vdrep processes in); and a process using the kernel locks does not see these, so every
// vdrep on a host must run with the addon or every one without it.

import {createHash} from 'node:crypto'
import net from 'node:net'

import {lockUnavailable} from './lock-unavailable.js'

export interface PortableLock {
  /** Unbind the name; the next taker gets it at once. */
  release(): void
}

/** The abstract socket name for a lock key (hashed: names are limited to 107 bytes). */
export function portableLockName(key: string): string {
  return `\0vdrep-lock-${createHash('sha256').update(key).digest('hex').slice(0, 40)}`
}

/**
 * Take the lock named `key` without waiting: null when another holder (this process or
 * another) has it. Throws LOCK_UNAVAILABLE where abstract sockets do not exist (not Linux).
 */
export async function tryPortableLock(key: string): Promise<PortableLock | null> {
  const server = net.createServer((socket) => socket.destroy()) // a stranger's connection carries nothing
  server.unref() // a held lock must not keep the process alive
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({path: portableLockName(key), exclusive: true}, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    server.close()
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return null
    throw lockUnavailable(`cannot take the lock ${key}`, err)
  }
  server.on('error', () => {}) // nothing can fail on a listening socket that is only closed
  let held = true
  return {
    release: () => {
      if (!held) return
      held = false
      server.close() // closes the fd (and unbinds the name) now; only the callback waits
    },
  }
}
