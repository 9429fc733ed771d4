// The TCP connection of an ssh2 login, opened before ssh2 is loaded and the login settings
// are read. On the replica host sshd forks (and re-executes itself) for each connection
// before it sends its first byte: 8-45 ms on the bench host under load, which the client
// spent idle after it had itself spent ~45 ms loading ssh2 and ~20 ms reading keys and
// known_hosts. Opened first, the two overlap: the socket waits, unread (a net.Socket buffers
// what arrives until someone reads), and ssh2 takes it over already connected (its `sock`).
//
// Nothing of the login is decided here: the same ~/.ssh/config reading the login would make
// names the host and port, and the host key, the keys and every check stay ssh2's, on this
// socket as on one it opens itself. A socket that failed before the login took it is dropped
// and the login connects as before, so a refused or unreachable host fails with the same error.
import net from 'node:net'
import {trace} from '../../util/trace.js'
import type {SshSettings} from '../../psf/settings.js'
import type {Target} from '../../target/target.js'
import {resolveSshHost, type SshHostQuery, type SshHostSettings} from './ssh-config.js'

/** An ssh_config file for both carriers instead of ~/.ssh/config (tests; ssh -F). */
export function sshConfigFile(): string | undefined {
  return process.env['VDREP_SSH_CONFIG'] || undefined
}

/** The host a login to `target` looks up in ssh_config: the early socket's and the login's. */
export function sshHostQuery(target: Extract<Target, {kind: 'ssh'}>, ssh: SshSettings): SshHostQuery {
  return {host: target.host, user: target.user ?? ssh.user, port: target.port ?? ssh.port, configFile: sshConfigFile()}
}

export interface EarlyConnection {
  /** What was resolved: a login with another query reads the config itself. */
  readonly query: SshHostQuery
  /** What the query resolved to: the login uses it instead of reading the config again. */
  readonly settings: SshHostSettings
  /** The socket for the login (connecting or connected), or undefined when it failed already. */
  take(): net.Socket | undefined
  /** Close it unused (the login failed before connecting). */
  drop(): void
}

/** Whether `early` was opened for this login (same host, user, port, config file and home). */
export function sameQuery(early: EarlyConnection, q: SshHostQuery): boolean {
  const e = early.query
  return e.host === q.host && e.user === q.user && e.port === q.port && e.configFile === q.configFile && e.homeDir === q.homeDir
}

/**
 * Resolve the host as the login will, and start connecting. Undefined when the config cannot
 * be read: the login then reads it itself and says what is wrong.
 */
export async function openEarly(q: SshHostQuery): Promise<EarlyConnection | undefined> {
  let settings: SshHostSettings
  try {
    settings = await resolveSshHost(q)
  } catch {
    return undefined
  }
  trace('ssh: early tcp connect')
  const socket = net.connect({host: settings.hostName, port: settings.port})
  let failed = false
  const onFail = () => (failed = true)
  // Until ssh2 takes it: an error (refused, unreachable) is kept here, never thrown.
  socket.on('error', onFail)
  socket.once('close', onFail)
  let taken = false
  return {
    query: q,
    settings,
    take() {
      taken = true
      socket.removeListener('error', onFail)
      socket.removeListener('close', onFail)
      if (!failed && !socket.destroyed) return socket
      socket.destroy()
      return undefined
    },
    drop() {
      if (taken) return
      taken = true
      socket.removeListener('close', onFail)
      socket.destroy()
    },
  }
}
