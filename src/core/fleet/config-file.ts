// The fleet's config file (default /etc/vdrep/vdrep.conf; VDREP_CONFIG or --config name
// another): which disks `push --all`, `fullsync --all` and `status` work on, and the settings
// each should have. TOML, read with smol-toml (TOML 1.0, no dependencies, errors with line and
// column; loaded only when a config is read, so commands on one disk pay nothing for it).
// The whole file is checked before any disk is touched: a bad file changes nothing (exit 2),
// and every message names the file and line. The .psf stays the record of each disk's state;
// reconcile.ts decides what happens when the two disagree.
//
//   jobs = 2                       # disks worked on at once (default 1); --jobs overrides
//   bandwidth-budget = "100M"      # bytes/s shared by every transfer running at once
//   [defaults]                     # any disk key: what a disk gets unless it says otherwise
//   identity = ["/root/.ssh/id_ed25519"]
//   rpo = "15m"
//   [[disk]]
//   path = "/vm/web.img"           # required; relative paths are against the file's folder
//   target = "backup@dr1:/srv/replicas/web.img"
//   group = "web"
import fs from 'node:fs/promises'
import path from 'node:path'
import {UsageError} from '../errors.js'
import type {ReplicationSettings} from '../psf/settings.js'
import {parseSize} from '../util/units.js'
import {SETTING_KEYS, settingKey} from '../settings/keys.js'
import {ConfigLines} from './config-lines.js'

export const DEFAULT_CONFIG = '/etc/vdrep/vdrep.conf'
export const CONFIG_ENV = 'VDREP_CONFIG'
export const MAX_JOBS = 64
/** A config file is a short list of disks: a larger one is refused before it is parsed. */
const MAX_CONFIG_BYTES = 1 << 20

/** One setting a disk's table (or the defaults) asks for, as text values, with its line. */
export interface ConfiguredSetting {
  key: string
  values: string[]
  line: number | null
  /** The folder relative paths in the values are read against: the config file's. */
  base: string
}

export interface ConfiguredDisk {
  disk: string
  line: number | null
  /** Defaults first, then the disk's own: a later key wins. */
  settings: ConfiguredSetting[]
}

export interface FleetConfig {
  file: string
  jobs: number
  /** Bytes per second shared by all transfers at once (0: none). */
  budgetBytesPerSecond: number
  disks: ConfiguredDisk[]
}

/** Which file: --config, else VDREP_CONFIG, else the default; `named` says a missing one is an error. */
export function configPath(flag?: string): {file: string; named: boolean} {
  if (flag !== undefined) return {file: path.resolve(flag), named: true}
  const env = process.env[CONFIG_ENV]
  if (env) return {file: path.resolve(env), named: true}
  return {file: DEFAULT_CONFIG, named: false}
}

/** Read and check the config; null when the default file does not exist (not an error). */
export async function loadConfig(flag?: string): Promise<FleetConfig | null> {
  const {file, named} = configPath(flag)
  let text: string
  try {
    const st = await fs.stat(file)
    if (!st.isFile()) throw new UsageError('CONFIG_INVALID', `${file} is not a regular file`)
    if (st.size > MAX_CONFIG_BYTES) throw new UsageError('CONFIG_INVALID', `${file} is ${st.size} bytes, more than a config file may be (${MAX_CONFIG_BYTES})`)
    text = await fs.readFile(file, 'utf8')
  } catch (err) {
    if (err instanceof UsageError) throw err
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' && !named) return null
    if (code === 'ENOENT') throw new UsageError('CONFIG_MISSING', `no config file at ${file}`, {hint: `name an existing file with --config or ${CONFIG_ENV}`})
    throw new UsageError('CONFIG_INVALID', `cannot read the config file ${file}: ${(err as Error).message}`, {cause: err})
  }
  return parseConfig(text, file)
}

/** Check a config's text (the file's name and folder for messages and relative paths). */
export async function parseConfig(text: string, file: string): Promise<FleetConfig> {
  const {parse, TomlError} = await import('smol-toml')
  const lines = new ConfigLines(text)
  const fail = (line: number | null, message: string, hint?: string): never => {
    throw new UsageError('CONFIG_INVALID', `${file}${line ? `:${line}` : ''}: ${message}`, {hint: hint ?? 'nothing was changed: fix the file and run again'})
  }
  let doc: Record<string, unknown>
  try {
    doc = parse(text) as Record<string, unknown>
  } catch (err) {
    if (err instanceof TomlError) fail(err.line, `not valid TOML: ${err.message.split('\n')[0].replace(/^Invalid TOML document: /, '')}`)
    throw err
  }
  const base = path.dirname(file)
  let jobs = 1
  let budget = 0
  let defaults: ConfiguredSetting[] = []
  let disks: ConfiguredDisk[] = []
  for (const [key, value] of Object.entries(doc)) {
    const line = lines.lineOf('', key)
    if (key === 'jobs') {
      if (typeof value !== 'bigint' && typeof value !== 'number') fail(line, 'jobs: give a whole number')
      const n = Number(value)
      if (!Number.isInteger(n) || n < 1 || n > MAX_JOBS) fail(line, `jobs: ${n} is outside 1..${MAX_JOBS}`)
      jobs = n
    } else if (key === 'bandwidth-budget') {
      const t = textOf(value)
      if (t === null) fail(line, 'bandwidth-budget: give a size per second, e.g. "100M"')
      budget = t === 'off' ? 0 : sizeOrFail(t as string, line, fail)
    } else if (key === 'defaults') {
      defaults = settingsOf(value, 'defaults', lines, base, fail)
    } else if (key === 'disk') {
      if (!Array.isArray(value)) fail(line, 'disk: write each disk as a [[disk]] table')
      disks = (value as unknown[]).map((d, i) => diskOf(d, i, lines, base, fail))
    } else fail(line, `unknown key '${key}'`, 'top-level keys: jobs, bandwidth-budget, [defaults], [[disk]]')
  }
  // [defaults] may come after the disks in the file: apply them once all is read.
  disks = disks.map((d) => ({...d, settings: [...defaults, ...d.settings]}))
  const seen = new Map<string, number | null>()
  for (const d of disks) {
    if (seen.has(d.disk)) fail(d.line, `the disk ${d.disk} is listed twice (first at line ${seen.get(d.disk) ?? '?'})`)
    seen.set(d.disk, d.line)
    checkTogether(d, fail)
  }
  return {file, jobs, budgetBytesPerSecond: budget, disks}
}

type Fail = (line: number | null, message: string, hint?: string) => never

function textOf(v: unknown): string | null {
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'bigint') return String(v)
  return null
}

function sizeOrFail(t: string, line: number | null, fail: Fail): number {
  try {
    return parseSize(t.replace(/\/s$/i, ''), 'bandwidth-budget')
  } catch (err) {
    return fail(line, (err as Error).message)
  }
}

function settingsOf(table: unknown, name: string, lines: ConfigLines, base: string, fail: Fail, skip: string[] = []): ConfiguredSetting[] {
  if (typeof table !== 'object' || table === null || Array.isArray(table)) fail(lines.lineOf(name), `${name}: must be a table`)
  const out: ConfiguredSetting[] = []
  for (const [key, value] of Object.entries(table as Record<string, unknown>)) {
    if (skip.includes(key)) continue
    const line = lines.lineOf(name, key)
    let k
    try {
      k = settingKey(key)
    } catch (err) {
      return fail(line, (err as Error).message, `keys: path (a disk's), ${SETTING_KEYS.map((x) => x.name).join(', ')}`)
    }
    const values = Array.isArray(value) ? value.map(textOf) : [textOf(value)]
    if (values.some((v) => v === null) || (Array.isArray(value) && !k.many))
      fail(line, `${key}: give ${k.many ? 'a string or a list of strings' : 'a string or a number'}`)
    // Checked now, against a stand-in, so a bad value stops the file before any disk is touched.
    try {
      k.set(STAND_IN, values as string[], base)
    } catch (err) {
      fail(line, (err as Error).message)
    }
    out.push({key, values: values as string[], line, base})
  }
  return out
}

/** Values are checked on these settings; the SSH keys need an SSH target to stand on. */
const STAND_IN: ReplicationSettings = {target: 'check@stand-in.invalid:/x', rpoSeconds: 900, fullsyncPort: 31031, deltaPort: 44046}

function diskOf(v: unknown, i: number, lines: ConfigLines, base: string, fail: Fail): ConfiguredDisk {
  const table = `disk#${i}`
  const line = lines.lineOf(table)
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(line, `disk ${i + 1}: must be a table`)
  const p = (v as Record<string, unknown>).path
  if (typeof p !== 'string' || p.length === 0) fail(line, `disk ${i + 1}: no path (path = "/vm/disk.img")`)
  return {disk: path.resolve(base, p as string), line, settings: settingsOf(v, table, lines, base, fail, ['path'])}
}

/** Settings that are valid alone but not together (ports, an SSH key with a local target). */
function checkTogether(d: ConfiguredDisk, fail: Fail): void {
  const target = [...d.settings].reverse().find((s) => s.key === 'target')
  let s: ReplicationSettings = {...STAND_IN, ...(target ? {target: target.values[0]} : {})}
  for (const c of d.settings) {
    try {
      s = settingKey(c.key).set(s, c.values, c.base)
    } catch (err) {
      fail(c.line ?? d.line, `${d.disk}: ${(err as Error).message}`)
    }
  }
  if (s.fullsyncPort === s.deltaPort) fail(d.line, `${d.disk}: the full-sync port and the delta port are both ${s.fullsyncPort}`)
}
