// Host key verification for one connection: which host-key algorithms to offer (only the
// types known_hosts lists for the host, so a host known by its ECDSA key is asked for
// that key), and the ssh2 `hostVerifier` that accepts a listed key, records a new one
// when told to, and refuses a changed, revoked or unknown one with a HostKeyError.

import {HostKeyError} from '../../errors.js'
import {describeKeyType, fingerprintSha256, hostKeyAlgorithmsFor, keyTypeOf, type HostKeyAlgorithm} from './host-key.js'
import {appendKnownHost, KnownHosts, type KnownHostEntry} from './known-hosts.js'

export interface HostVerificationOptions {
  knownHostsFile: string
  /** The name known_hosts records the host under (`knownHostName()` form). */
  lookupName: string
  acceptNewHostKey?: boolean
  log?: (line: string) => void
}

export interface PresentedHostKey {
  type: string
  fingerprint: string
}

export class HostVerification {
  /** Host-key algorithms to offer; undefined offers ssh2's defaults. */
  readonly algorithms: HostKeyAlgorithm[] | undefined
  /** The key the server presented, once it has. */
  presented: PresentedHostKey | undefined
  /** Why the key was refused, once it has been. */
  failure: HostKeyError | undefined

  private constructor(
    private readonly opts: HostVerificationOptions,
    private readonly known: KnownHosts,
  ) {
    this.algorithms = hostKeyAlgorithmsFor(known.keyTypesFor(opts.lookupName))
  }

  static async prepare(opts: HostVerificationOptions): Promise<HostVerification> {
    const known = await KnownHosts.load(opts.knownHostsFile)
    if (known.badLines.length > 0) {
      opts.log?.(`ignoring unreadable lines in ${opts.knownHostsFile}: ${known.badLines.join(', ')}`)
    }
    const v = new HostVerification(opts, known)
    if (v.algorithms) opts.log?.(`known host key types for ${opts.lookupName}: ${known.keyTypesFor(opts.lookupName).join(', ')}`)
    return v
  }

  /** The ssh2 `hostVerifier` callback (raw key blob in, verdict out). */
  readonly verify = (key: Buffer, done: (ok: boolean) => void): void => {
    this.decide(key).then(
      (ok) => done(ok),
      (err: unknown) => {
        this.failure = err instanceof HostKeyError ? err : new HostKeyError('HOST_KEY_CHECK_FAILED', String(err), {cause: err})
        done(false)
      },
    )
  }

  private async decide(key: Buffer): Promise<boolean> {
    const {lookupName: name, knownHostsFile: file} = this.opts
    const type = keyTypeOf(key)
    const fingerprint = fingerprintSha256(key)
    this.presented = {type, fingerprint}
    const shown = `${describeKeyType(type)} key fingerprint is ${fingerprint}`
    const result = this.known.check(name, key)
    switch (result.status) {
      case 'match':
        this.opts.log?.(`host ${name} is known (${file}:${result.entry.line}), ${shown}`)
        return true
      case 'revoked':
        throw new HostKeyError('HOST_KEY_REVOKED', `the host key of ${name} is marked @revoked in ${file}:${result.entry.line} (${shown})`, {
          hint: 'the replica host must get a new host key; vdrep will not use a revoked one',
        })
      case 'changed':
        throw changedKeyError(name, file, type, fingerprint, result.entries)
      case 'other-type':
        throw new HostKeyError(
          'HOST_KEY_CHANGED',
          `REMOTE HOST IDENTIFICATION HAS CHANGED? ${name} presented an ${shown}, but ${file} records only keys of other types for it (${where(file, result.entries)}); someone could be impersonating the replica host`,
          {hint: removeHint(name, file)},
        )
      case 'unknown':
        if (!this.opts.acceptNewHostKey) {
          throw new HostKeyError('HOST_KEY_UNKNOWN', `the authenticity of host ${name} can't be established: ${shown}; it is not in ${file}`, {
            hint: 'check the fingerprint with the replica host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then run again with --accept-new-host-key to trust it',
          })
        }
        await appendKnownHost(file, name, key)
        this.opts.log?.(`permanently added ${name} (${shown}) to ${file}`)
        return true
    }
  }
}

function where(file: string, entries: KnownHostEntry[]): string {
  return entries.map((e) => `${describeKeyType(e.keyType)} key at ${file}:${e.line}`).join(', ')
}

function removeHint(name: string, file: string): string {
  return `if the replica host's key was replaced on purpose, remove the old entry with: ssh-keygen -R '${name}' -f ${file}, then run again with --accept-new-host-key`
}

function changedKeyError(name: string, file: string, type: string, fingerprint: string, entries: KnownHostEntry[]): HostKeyError {
  return new HostKeyError(
    'HOST_KEY_CHANGED',
    `WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY: ` +
      `the ${describeKeyType(type)} host key of ${name} is now ${fingerprint}, but ${file} records a different one ` +
      `(offending ${where(file, entries)}); vdrep refuses to connect`,
    {hint: removeHint(name, file)},
  )
}

/** The error for a handshake that found no host-key algorithm in common with ours. */
export function noCommonHostKeyError(name: string, file: string, offered: readonly string[], cause: unknown): HostKeyError {
  return new HostKeyError(
    'HOST_KEY_CHANGED',
    `REMOTE HOST IDENTIFICATION HAS CHANGED? ${name} offers none of the host key types that ${file} records for it (${offered.join(', ')}); its host keys were replaced, or someone is impersonating it`,
    {hint: removeHint(name, file), cause},
  )
}
