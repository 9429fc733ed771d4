// The replication settings chosen at `init`, kept in the .psf header so cron runs need no
// flags. Stored as bounded JSON inside the checksummed header slot; validated on decode.
import {StateError} from '../errors.js'

export interface SshSettings {
  user?: string
  port?: number
  identityFiles?: string[]
  knownHostsFile?: string
  /** Remote command that starts the receiver when nothing listens (auto-start). */
  serveCommand?: string
  /** Which SSH client carries the tunnels: ssh2 in this process (default) or the system's `ssh`. */
  carrier?: SshCarrier
}

/** The SSH clients `--ssh` names: ssh2 (in this process, the default) or the system's OpenSSH `ssh`. */
export const SSH_CARRIERS = ['ssh2', 'openssh'] as const
export type SshCarrier = (typeof SSH_CARRIERS)[number]

/** The disk's SSH settings with this run's carrier (a --ssh flag) over the stored one. */
export function withCarrier(ssh: SshSettings | undefined, carrier: SshCarrier | undefined): SshSettings | undefined {
  return carrier === undefined ? ssh : {...ssh, carrier}
}

export interface ReplicationSettings {
  /** As given to init: a local path or [user@]host[:port]:/path. */
  target: string
  rpoSeconds: number
  fullsyncPort: number
  deltaPort: number
  ssh?: SshSettings
  /** The restore-point retention chosen at init, handed to the receiver after a proved full sync (it keeps a policy set since). */
  retention?: string
}

export const DEFAULT_FULLSYNC_PORT = 31031
export const DEFAULT_DELTA_PORT = 44046

export function encodeSettings(s: ReplicationSettings): Buffer {
  return Buffer.from(JSON.stringify(s), 'utf8')
}

export function decodeSettings(buf: Buffer): ReplicationSettings {
  let v: unknown
  try {
    v = JSON.parse(buf.toString('utf8'))
  } catch {
    throw new StateError('PSF_CORRUPT', 'the .psf settings block is not valid JSON')
  }
  const s = v as Partial<ReplicationSettings>
  const bad = (field: string) => new StateError('PSF_CORRUPT', `the .psf settings block has an invalid ${field}`)
  if (typeof s !== 'object' || s === null) throw bad('object')
  if (typeof s.target !== 'string' || s.target.length === 0) throw bad('target')
  if (!Number.isInteger(s.rpoSeconds) || (s.rpoSeconds as number) <= 0) throw bad('rpoSeconds')
  for (const p of ['fullsyncPort', 'deltaPort'] as const) {
    if (!Number.isInteger(s[p]) || (s[p] as number) < 1 || (s[p] as number) > 65535) throw bad(p)
  }
  if (s.ssh !== undefined && (typeof s.ssh !== 'object' || s.ssh === null)) throw bad('ssh')
  if (s.ssh?.carrier !== undefined && s.ssh.carrier !== 'ssh2' && s.ssh.carrier !== 'openssh') throw bad('ssh.carrier')
  if (s.retention !== undefined && (typeof s.retention !== 'string' || s.retention.length === 0 || s.retention.length > 200)) throw bad('retention')
  return s as ReplicationSettings
}
