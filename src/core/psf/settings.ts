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
  /** Compression on the wire (compress/policy.ts): 'auto' (also when absent), 'none' or a zstd level. */
  compress?: 'auto' | 'none' | number
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
  if (s.retention !== undefined && (typeof s.retention !== 'string' || s.retention.length === 0 || s.retention.length > 200)) throw bad('retention')
  if (s.compress !== undefined && !validCompress(s.compress)) throw bad('compress')
  return s as ReplicationSettings
}

function validCompress(c: unknown): boolean {
  return c === 'auto' || c === 'none' || (Number.isInteger(c) && (c as number) >= 1 && (c as number) <= 19)
}
