// What a failed ssh2 connect() means for the user: one typed error naming the host, the host
// key files or the keys offered, with what to do about it.

import {TransportError, UsageError, VdrepError} from '../../errors.js'
import {noCommonHostKeyError, type HostVerification} from './host-verifier.js'
import {isNoCommonCipher, isNoCommonHostKey} from './ssh2-error-text.js'

export interface ConnectContext {
  /** `user@host:port`. */
  label: string
  verification: HostVerification
  knownHostsFile: string
  lookupName: string
  /** The keys offered, described for a message. */
  offered: string
  /** Identity files skipped, with why. */
  skipped: string[]
}

export function connectError(err: Error & {level?: string; code?: string}, ctx: ConnectContext): VdrepError {
  const {label, verification: v, knownHostsFile, lookupName, offered, skipped} = ctx
  if (v.failure) return v.failure
  if (err instanceof VdrepError) return err
  if (err.level === 'handshake' && isNoCommonHostKey(err) && v.algorithms) {
    return noCommonHostKeyError(lookupName, knownHostsFile, v.algorithms, err)
  }
  if (err.level === 'handshake' && isNoCommonCipher(err)) {
    return new UsageError('BAD_CIPHER', `${label} accepts none of the ciphers asked for: ${err.message}`, {cause: err})
  }
  if (err.level === 'client-authentication') {
    return new TransportError(
      'SSH_AUTH',
      `ssh login to ${label} failed: the server accepted none of the keys offered (${offered})${skipped.length ? `; skipped: ${skipped.join('; ')}` : ''}`,
      {
        cause: err,
        hint: 'add your public key to the authorized_keys of that user on the replica host, load the right key into ssh-agent, or name it with --identity',
      },
    )
  }
  if (err.level === 'client-timeout') {
    return new TransportError('SSH_TIMEOUT', `no ssh answer from ${label} in time: ${err.message}`, {cause: err})
  }
  return new TransportError('SSH_CONNECT', `cannot connect to ${label}: ${err.message}`, {
    cause: err,
    hint: 'check the host name and port, and that sshd runs on the replica host',
  })
}
