// Facts about an SSH public key blob (the wire form, as in known_hosts' base64 field):
// its type, its OpenSSH fingerprint, and the host-key algorithms that can present it.

import {createHash} from 'node:crypto'

/** The key type named at the start of a public key blob, e.g. `ssh-ed25519`. */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return ''
  const len = blob.readUInt32BE(0)
  if (len === 0 || len > 64 || 4 + len > blob.length) return ''
  return blob.subarray(4, 4 + len).toString('latin1')
}

/** The fingerprint as OpenSSH prints it: `SHA256:` and unpadded base64. */
export function fingerprintSha256(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')
}

/** The short name OpenSSH uses in messages ("ED25519 key fingerprint is ..."). */
export function describeKeyType(type: string): string {
  if (type === 'ssh-ed25519') return 'ED25519'
  if (type.startsWith('ecdsa-sha2-')) return 'ECDSA'
  if (type === 'ssh-rsa') return 'RSA'
  if (type === 'ssh-dss') return 'DSA'
  return type
}

/** ssh2's host-key algorithms, in its order of preference (OpenSSH's, too). */
const HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
] as const

export type HostKeyAlgorithm = (typeof HOST_KEY_ALGORITHMS)[number]

/** The signature algorithms a key of this type can be presented with. */
function algorithmsForKeyType(type: string): readonly string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type]
}

/**
 * The host-key algorithms to offer for a host whose known_hosts entries have these key
 * types, so that the server presents a key we can check. Undefined when none of the
 * types is usable (offer the defaults then).
 */
export function hostKeyAlgorithmsFor(keyTypes: Iterable<string>): HostKeyAlgorithm[] | undefined {
  const wanted = new Set<string>()
  for (const type of keyTypes) for (const algo of algorithmsForKeyType(type)) wanted.add(algo)
  const list = HOST_KEY_ALGORITHMS.filter((algo) => wanted.has(algo))
  return list.length > 0 ? list : undefined
}
