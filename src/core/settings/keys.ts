// The settings `vdrep config <disk> KEY VALUE` and the config file's disk tables may change in
// place: one table of keys, each with how it reads, shows and checks its value, so the command
// and the config file (fleet/config-file.ts) agree on every name and every limit. What is not
// here (block size, hash, the activity log) shapes the record itself: only a new init changes it.
import path from 'node:path'
import {UsageError} from '../errors.js'
import {GROUP_NAME, MAX_HOOK_LENGTH, type ReplicationSettings, type SshSettings} from '../psf/settings.js'
import {parseRetention} from '../points/retention.js'
import {formatTarget, parseTarget, type Target} from '../target/target.js'
import {formatBytes, formatDuration, parseDuration, parseSize} from '../util/units.js'

export const MIN_RPO_SECONDS = 5 * 60
export const MAX_RPO_SECONDS = 24 * 3600

export interface SettingKey {
  name: string
  summary: string
  /** The value as shown, or null when not set. */
  show(s: ReplicationSettings): string | null
  /** The settings with this key set from its text values (relative paths against `base`). */
  set(s: ReplicationSettings, values: string[], base: string): ReplicationSettings
  /** The settings with this key unset (its default); absent: the key cannot be unset. */
  unset?(s: ReplicationSettings): ReplicationSettings
  /** Takes several values (identity files); the others take exactly one. */
  many?: true
}

/** The keys that shape the record: changing them needs `vdrep init --force` and a full sync. */
export const INIT_ONLY_KEYS = ['block-size', 'hash', 'al-extents', 'al-extent-size'] as const

const bad = (key: string, message: string, hint?: string) => new UsageError('SETTING_BAD', `${key}: ${message}`, hint ? {hint} : {})

function one(key: string, values: string[]): string {
  if (values.length !== 1) throw bad(key, `takes one value, got ${values.length}`)
  return values[0]
}

function withSsh(s: ReplicationSettings, patch: Partial<SshSettings>): ReplicationSettings {
  const merged: SshSettings = {...s.ssh, ...patch}
  const ssh = Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)) as SshSettings
  const rest = Object.fromEntries(Object.entries(s).filter(([k]) => k !== 'ssh')) as unknown as ReplicationSettings
  return Object.keys(ssh).length === 0 ? rest : {...rest, ssh}
}

function without(s: ReplicationSettings, field: 'bwlimitBytesPerSecond' | 'preHook' | 'postHook' | 'retention' | 'group'): ReplicationSettings {
  return Object.fromEntries(Object.entries(s).filter(([k]) => k !== field)) as unknown as ReplicationSettings
}

function port(key: string, text: string): number {
  const n = Number(text)
  if (!/^\d+$/.test(text.trim()) || !Number.isInteger(n) || n < 1 || n > 65535)
    throw new UsageError('BAD_PORT', `${key}: '${text}' is not a port between 1 and 65535`)
  return n
}

function sshTarget(key: string, s: ReplicationSettings): Extract<Target, {kind: 'ssh'}> {
  const t = parseTarget(s.target)
  if (t.kind !== 'ssh')
    throw bad(key, `the target ${s.target} is a local path: it has no SSH login`, 'set an SSH target first: vdrep config DISK target user@host:/path')
  return t
}

function hook(key: string, values: string[]): string {
  const v = one(key, values)
  if (v.length === 0 || v.length > MAX_HOOK_LENGTH || /[\r\n]/.test(v)) throw bad(key, `a hook is one line of 1..${MAX_HOOK_LENGTH} characters`)
  return v
}

export const SETTING_KEYS: readonly SettingKey[] = [
  {
    name: 'target',
    summary: 'the replica: /local/path or [user@]host[:sshport]:/path (another replica means a full sync)',
    show: (s) => s.target,
    set: (s, v) => ({...s, target: formatTarget(parseTarget(one('target', v)))}),
  },
  {
    name: 'ssh-user',
    summary: 'the login on the replica host (part of the target)',
    show: (s) => (parseTarget(s.target) as {user?: string}).user ?? null,
    set: (s, v) => ({...s, target: formatTarget({...sshTarget('ssh-user', s), user: one('ssh-user', v)})}),
    unset: (s) => ({...s, target: formatTarget({...sshTarget('ssh-user', s), user: undefined})}),
  },
  {
    name: 'ssh-port',
    summary: 'the SSH port of the replica host (part of the target)',
    show: (s) => (parseTarget(s.target) as {port?: number}).port?.toString() ?? null,
    set: (s, v) => ({...s, target: formatTarget({...sshTarget('ssh-port', s), port: port('ssh-port', one('ssh-port', v))})}),
    unset: (s) => ({...s, target: formatTarget({...sshTarget('ssh-port', s), port: undefined})}),
  },
  {
    name: 'fullsync-port',
    summary: "the receiver's full-sync port on the replica host",
    show: (s) => String(s.fullsyncPort),
    set: (s, v) => ({...s, fullsyncPort: port('fullsync-port', one('fullsync-port', v))}),
  },
  {
    name: 'delta-port',
    summary: "the receiver's delta port on the replica host",
    show: (s) => String(s.deltaPort),
    set: (s, v) => ({...s, deltaPort: port('delta-port', one('delta-port', v))}),
  },
  {
    name: 'identity',
    summary: 'SSH identity files (one or more)',
    many: true,
    show: (s) => (s.ssh?.identityFiles?.length ? s.ssh.identityFiles.join(', ') : null),
    set: (s, v, base) => {
      if (v.length === 0) throw bad('identity', 'name at least one identity file')
      return withSsh(s, {identityFiles: v.map((f) => path.resolve(base, f))})
    },
    unset: (s) => withSsh(s, {identityFiles: undefined}),
  },
  {
    name: 'known-hosts',
    summary: 'the known_hosts file the replica host is checked against',
    show: (s) => s.ssh?.knownHostsFile ?? null,
    set: (s, v, base) => withSsh(s, {knownHostsFile: path.resolve(base, one('known-hosts', v))}),
    unset: (s) => withSsh(s, {knownHostsFile: undefined}),
  },
  {
    name: 'serve-command',
    summary: 'the remote command that starts the receiver when none listens',
    show: (s) => s.ssh?.serveCommand ?? null,
    set: (s, v) => withSsh(s, {serveCommand: hook('serve-command', v)}),
    unset: (s) => withSsh(s, {serveCommand: undefined}),
  },
  {
    name: 'rpo',
    summary: 'the recovery point objective (5m..24h)',
    show: (s) => formatDuration(s.rpoSeconds),
    set: (s, v) => {
      const rpo = parseDuration(one('rpo', v), 'rpo')
      if (rpo < MIN_RPO_SECONDS || rpo > MAX_RPO_SECONDS) throw new UsageError('BAD_RPO', `rpo: ${formatDuration(rpo)} is outside 5m..24h`)
      return {...s, rpoSeconds: rpo}
    },
  },
  {
    name: 'bandwidth',
    summary: 'bytes per second one transfer of this disk may send (e.g. 50M; off: no cap)',
    show: (s) => (s.bwlimitBytesPerSecond ? `${formatBytes(s.bwlimitBytesPerSecond)}/s` : null),
    set: (s, v) => {
      const text = one('bandwidth', v).replace(/\/s$/i, '')
      const n = text.trim() === 'off' ? 0 : parseSize(text, 'bandwidth')
      return n === 0 ? without(s, 'bwlimitBytesPerSecond') : {...s, bwlimitBytesPerSecond: n}
    },
    unset: (s) => without(s, 'bwlimitBytesPerSecond'),
  },
  {
    name: 'pre-hook',
    summary: 'command run just before the point in time of a push',
    show: (s) => s.preHook ?? null,
    set: (s, v) => ({...s, preHook: hook('pre-hook', v)}),
    unset: (s) => without(s, 'preHook'),
  },
  {
    name: 'post-hook',
    summary: 'command run just after the point in time of a push',
    show: (s) => s.postHook ?? null,
    set: (s, v) => ({...s, postHook: hook('post-hook', v)}),
    unset: (s) => without(s, 'postHook'),
  },
  {
    name: 'retention',
    summary: 'restore-point retention a new replica gets after its first full sync (vdrep points --retention sets it now)',
    show: (s) => s.retention ?? null,
    set: (s, v) => {
      const spec = one('retention', v)
      parseRetention(spec)
      return {...s, retention: spec.trim()}
    },
    unset: (s) => without(s, 'retention'),
  },
  {
    name: 'group',
    summary: 'the consistency group the disk belongs to (a name)',
    show: (s) => s.group ?? null,
    set: (s, v) => {
      const g = one('group', v)
      if (!GROUP_NAME.test(g))
        throw bad('group', `'${g}' is not a group name`, 'letters, digits, ".", "_" and "-", at most 64, starting with a letter or digit')
      return {...s, group: g}
    },
    unset: (s) => without(s, 'group'),
  },
]

export function settingKey(name: string): SettingKey {
  const k = SETTING_KEYS.find((x) => x.name === name)
  if (k) return k
  if ((INIT_ONLY_KEYS as readonly string[]).includes(name))
    throw new UsageError('SETTING_NEEDS_INIT', `${name} shapes the change record itself: it cannot change in place`, {
      hint: 'run `vdrep init --force DISK --to TARGET` with the new value, then `vdrep fullsync DISK`',
    })
  throw new UsageError('SETTING_UNKNOWN', `no setting named '${name}'`, {hint: `settings: ${SETTING_KEYS.map((x) => x.name).join(', ')}`})
}

/** What a target names, for the binding: another host or path is another replica; a login or port is not. */
export function replicaOf(target: string): string {
  const t = parseTarget(target)
  return t.kind === 'local' ? `local:${t.path}` : `ssh:${t.host.toLowerCase()}:${t.path}`
}

/** The ports must differ: one receiver port speaks one protocol. */
export function checkSettings(s: ReplicationSettings): void {
  if (s.fullsyncPort === s.deltaPort)
    throw new UsageError('SAME_PORT', `the full-sync port and the delta port are both ${s.fullsyncPort}`, {hint: 'give them different ports'})
}

/** Key by key, what differs between two settings (shown values), in table order. */
export function settingsDiff(from: ReplicationSettings, to: ReplicationSettings): Array<{key: string; from: string | null; to: string | null}> {
  const out: Array<{key: string; from: string | null; to: string | null}> = []
  for (const k of SETTING_KEYS) {
    const a = k.show(from)
    const b = k.show(to)
    if (a !== b) out.push({key: k.name, from: a, to: b})
  }
  return out
}
