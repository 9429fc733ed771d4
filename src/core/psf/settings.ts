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
  /** `init --timeout`: how long every command waits for the replica host, unless its own --timeout says otherwise (transport/peer-watchdog.ts). */
  timeoutSeconds?: number
  /** Bytes per second a transfer of this disk may send (0 or absent: no cap); `--bwlimit` overrides it. */
  bwlimitBytesPerSecond?: number
  /** Commands run around the point in time of a push; `--pre-hook`/`--post-hook` override them. */
  preHook?: string
  postHook?: string
  /** The consistency group this disk belongs to (`init --group`, `vdrep config DISK group NAME`; `push --group` takes one point in time across its disks, doc/group-commit.md). */
  group?: string
  /** Compression on the wire (compress/policy.ts): 'auto' (also when absent), 'none' or a zstd level. */
  compress?: 'auto' | 'none' | number
}

/** Hooks are shell lines: bounded, one line. */
export const MAX_HOOK_LENGTH = 1000
/** A group name: letters, digits and `._-`, as in a unit or metric label. */
export const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** The bounds of timeoutSeconds: MIN_TIMEOUT_MS .. a day. */
export const MIN_TIMEOUT_SECONDS = 10
export const MAX_TIMEOUT_SECONDS = 86_400

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
  if (
    s.timeoutSeconds !== undefined &&
    (!Number.isInteger(s.timeoutSeconds) || s.timeoutSeconds < MIN_TIMEOUT_SECONDS || s.timeoutSeconds > MAX_TIMEOUT_SECONDS)
  )
    throw bad('timeoutSeconds')
  if (s.bwlimitBytesPerSecond !== undefined && (!Number.isSafeInteger(s.bwlimitBytesPerSecond) || s.bwlimitBytesPerSecond < 0))
    throw bad('bwlimitBytesPerSecond')
  for (const h of ['preHook', 'postHook'] as const) {
    const v = s[h]
    if (v !== undefined && (typeof v !== 'string' || v.length === 0 || v.length > MAX_HOOK_LENGTH || /[\r\n]/.test(v))) throw bad(h)
  }
  if (s.group !== undefined && (typeof s.group !== 'string' || !GROUP_NAME.test(s.group))) throw bad('group')
  if (s.compress !== undefined && !validCompress(s.compress)) throw bad('compress')
  return s as ReplicationSettings
}

/** The --timeout a command uses: its flag, else the .psf's setting, else undefined (the default). */
export function timeoutMsOf(flagMs: number | undefined, s: ReplicationSettings): number | undefined {
  return flagMs ?? (s.timeoutSeconds !== undefined ? s.timeoutSeconds * 1000 : undefined)
}

function validCompress(c: unknown): boolean {
  return c === 'auto' || c === 'none' || (Number.isInteger(c) && (c as number) >= 1 && (c as number) <= 19)
}
