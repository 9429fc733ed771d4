// What a failed `ssh` means, as the same typed errors the ssh2 carrier raises: an unknown
// host key is HOST_KEY_UNKNOWN (exit 8) whichever carrier met it, a refused login SSH_AUTH,
// a port where nothing listens TUNNEL_REFUSED (which starts the receiver). OpenSSH says what
// went wrong only in text on stderr; these patterns are its stable messages (ssh(1) of
// OpenSSH 7 to 9), matched here and nowhere else.

import {HostKeyError, TransportError, UsageError, type VdrepError} from '../../errors.js'

export interface SshExit {
  /** The non-debug lines ssh wrote (openssh-log.ts). */
  messages: string[]
  code: number | null
  signal: NodeJS.Signals | null
  /** Whether the tunnel had opened before ssh ended. */
  opened: boolean
}

const HOST_KEY_HINT =
  'compare the fingerprint with the replica host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub there), then add it to known_hosts, or run once with --accept-new-host-key'

/** The error for an ssh that ended with a failure; `label` is `user@host:port` as written. */
export function openSshError(e: SshExit, label: string, what: string): VdrepError {
  const text = e.messages.join('\n')
  const said = e.messages.slice(-4).join(' | ') || (e.signal ? `ssh died of ${e.signal}` : `ssh exited ${e.code}`)
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|has changed and you have requested strict checking/.test(text)) {
    return new HostKeyError('HOST_KEY_CHANGED', `the host key of ${label} differs from the one in known_hosts: ${said}`, {
      hint: 'if the replica host was reinstalled, check its new fingerprint and replace the old line (ssh-keygen -R); otherwise treat this as an attack',
    })
  }
  if (/REVOKED HOST KEY/.test(text)) return new HostKeyError('HOST_KEY_REVOKED', `the host key of ${label} is marked @revoked: ${said}`)
  if (/host key is known for|No .* host key is known|Host key verification failed/.test(text)) {
    return new HostKeyError('HOST_KEY_UNKNOWN', `the authenticity of host ${label} can't be established: ${said}`, {hint: HOST_KEY_HINT})
  }
  if (/Permission denied \(/.test(text)) {
    return new TransportError('SSH_AUTH', `ssh login to ${label} failed: ${said}`, {
      hint: 'add your public key to the authorized_keys of that user on the replica host, load the right key into ssh-agent, or name it with --identity (BatchMode: no passphrase prompts)',
    })
  }
  if (/Unable to negotiate|no matching cipher/.test(text)) return new UsageError('BAD_CIPHER', `${label} and ssh share no algorithm: ${said}`)
  if (/open failed: connect failed: Connection refused|stdio forwarding request failed/.test(text)) {
    return new TransportError('TUNNEL_REFUSED', `nothing listens on ${what} (${said})`, {hint: 'start vdrep serve on the replica host'})
  }
  if (/open failed/.test(text)) {
    return new TransportError('TUNNEL_FAILED', `cannot open a tunnel to ${what}: ${said}`, {hint: 'check AllowTcpForwarding in the replica host sshd_config'})
  }
  if (/timed out|Timeout, server .* not responding/.test(text)) return new TransportError('SSH_TIMEOUT', `no ssh answer from ${label} in time: ${said}`)
  if (e.opened) {
    return new TransportError('SSH_CONNECTION_LOST', `the ssh connection to ${label} was cut: ${said}`, {
      hint: 'check the network and the replica host, then run the command again',
    })
  }
  return new TransportError('SSH_CONNECT', `cannot connect to ${label} with ssh: ${said}`, {
    hint: 'check the host name and port, that sshd runs on the replica host, and `ssh -v` to it with the same settings',
  })
}

/** ssh could not be started at all. */
export function spawnError(err: NodeJS.ErrnoException, program: string): VdrepError {
  if (err.code === 'ENOENT' || err.code === 'EACCES') {
    return new UsageError('SSH_PROGRAM_MISSING', `the OpenSSH carrier needs the ssh program, and '${program}' cannot be run: ${err.message}`, {
      cause: err,
      hint: 'install the OpenSSH client (apt-get install openssh-client), or use the built-in carrier: --ssh ssh2',
    })
  }
  return new TransportError('SSH_CONNECT', `cannot start ${program}: ${err.message}`, {cause: err})
}
