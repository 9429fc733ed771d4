// The receiver's own configuration on the replica host. The root that replicas are written
// under never comes from the client: it comes from `vdrep serve --root`, or from this file
// (so that `vdrep serve --daemon`, started by a client over SSH, needs no flags):
//
//   {"root": "/srv/replicas", "fullsyncPort": 31031, "deltaPort": 44046,
//    "listen": "127.0.0.1", "logFile": "/var/log/vdrep/serve.log", "idleTimeout": "5m",
//    "maxConnections": 64, "maxConnectionsPerUid": 16}
//
// Looked up in order: --config FILE, $VDREP_SERVE_CONFIG, $XDG_CONFIG_HOME/vdrep/serve.json
// (default ~/.config/vdrep/serve.json), /etc/vdrep/serve.json. The first that exists is
// used. Like sshd's StrictModes, a file another user could write is refused: whoever can
// edit it decides where the receiver writes.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {UsageError} from '../errors.js'
import {DEFAULT_DELTA_PORT, DEFAULT_FULLSYNC_PORT} from '../psf/settings.js'
import {parseDuration} from '../util/units.js'
import {DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_UID} from './connection-caps.js'

export const LOOPBACK = '127.0.0.1'
export const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60 * 1000
const MAX_CONFIG_BYTES = 64 * 1024

export interface ServeConfig {
  root: string
  fullsyncPort: number
  deltaPort: number
  listen: string
  logFile?: string
  idleTimeoutMs: number
  /** Sockets open at once, refused ones included. */
  maxConnections: number
  /** Sessions served at once for one uid. */
  maxConnectionsPerUid: number
  /** The file the settings came from, if any. */
  configFile?: string
}

/** What the command line gave; anything set here wins over the file. */
export interface ServeFlags {
  root?: string
  fullsyncPort?: number
  deltaPort?: number
  listen?: string
  logFile?: string
  idleTimeoutMs?: number
  maxConnections?: number
  maxConnectionsPerUid?: number
  config?: string
}

interface FileSettings {
  root?: string
  fullsyncPort?: number
  deltaPort?: number
  listen?: string
  logFile?: string
  idleTimeoutMs?: number
  maxConnections?: number
  maxConnectionsPerUid?: number
}

/** Where a config file is looked for when --config is not given, in order. */
export function configCandidates(env: NodeJS.ProcessEnv = process.env, home = os.homedir()): string[] {
  const out: string[] = []
  if (env['VDREP_SERVE_CONFIG']) out.push(path.resolve(env['VDREP_SERVE_CONFIG']))
  const xdg = env['XDG_CONFIG_HOME'] && path.isAbsolute(env['XDG_CONFIG_HOME']) ? env['XDG_CONFIG_HOME'] : path.join(home, '.config')
  out.push(path.join(xdg, 'vdrep', 'serve.json'))
  out.push('/etc/vdrep/serve.json')
  return out
}

function bad(file: string, why: string): UsageError {
  return new UsageError('SERVE_CONFIG', `bad receiver config ${file}: ${why}`, {hint: 'see vdrep-serve(1), FILES'})
}

function port(file: string, v: unknown, field: string): number | undefined {
  if (v === undefined) return undefined
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535) throw bad(file, `${field} must be a port number between 1 and 65535`)
  return v as number
}

/** The largest cap accepted: a cap is a bound on file descriptors, not a tuning knob for millions. */
export const MAX_CONNECTION_CAP = 4096

function cap(file: string, v: unknown, field: string): number | undefined {
  if (v === undefined) return undefined
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > MAX_CONNECTION_CAP)
    throw bad(file, `${field} must be a whole number between 1 and ${MAX_CONNECTION_CAP}`)
  return v as number
}

function str(file: string, v: unknown, field: string): string | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string' || v.length === 0 || v.includes('\0')) throw bad(file, `${field} must be a non-empty string`)
  return v
}

/** Parse and check the JSON of a config file (exported for tests). */
export function parseServeConfig(file: string, text: string): FileSettings {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (err) {
    throw bad(file, `not valid JSON (${(err as Error).message})`)
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(file, 'not a JSON object')
  const o = v as Record<string, unknown>
  const known = new Set(['root', 'fullsyncPort', 'deltaPort', 'listen', 'logFile', 'idleTimeout', 'maxConnections', 'maxConnectionsPerUid'])
  const unknown = Object.keys(o).filter((k) => !known.has(k))
  if (unknown.length > 0) throw bad(file, `unknown setting ${unknown.map((k) => `'${k}'`).join(', ')}`)
  const root = str(file, o['root'], 'root')
  if (root !== undefined && !path.isAbsolute(root)) throw bad(file, `root '${root}' is not an absolute path`)
  const logFile = str(file, o['logFile'], 'logFile')
  if (logFile !== undefined && !path.isAbsolute(logFile)) throw bad(file, `logFile '${logFile}' is not an absolute path`)
  let idleTimeoutMs: number | undefined
  const idle = o['idleTimeout']
  if (idle !== undefined) {
    if (typeof idle === 'number' && Number.isInteger(idle) && idle > 0) idleTimeoutMs = idle * 1000
    else if (typeof idle === 'string') idleTimeoutMs = parseDuration(idle, `${file}: idleTimeout`) * 1000
    else throw bad(file, 'idleTimeout must be seconds or a duration like "5m"')
  }
  return {
    root,
    fullsyncPort: port(file, o['fullsyncPort'], 'fullsyncPort'),
    deltaPort: port(file, o['deltaPort'], 'deltaPort'),
    listen: str(file, o['listen'], 'listen'),
    logFile,
    idleTimeoutMs,
    maxConnections: cap(file, o['maxConnections'], 'maxConnections'),
    maxConnectionsPerUid: cap(file, o['maxConnectionsPerUid'], 'maxConnectionsPerUid'),
  }
}

async function readConfigFile(file: string, required: boolean): Promise<FileSettings | undefined> {
  let fh: fs.FileHandle
  try {
    fh = await fs.open(file, 'r')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (!required && (code === 'ENOENT' || code === 'ENOTDIR')) return undefined
    throw new UsageError('SERVE_CONFIG', `cannot read the receiver config ${file}: ${(err as Error).message}`)
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw bad(file, 'not a regular file')
    const uid = process.getuid?.() ?? 0
    if (st.uid !== uid && st.uid !== 0) throw bad(file, `it belongs to uid ${st.uid}, not to this user (${uid}) or root`)
    if (st.mode & 0o022) throw bad(file, `other users may write it (mode ${(st.mode & 0o777).toString(8)}); chmod go-w it`)
    if (st.size > MAX_CONFIG_BYTES) throw bad(file, `larger than ${MAX_CONFIG_BYTES} bytes`)
    return parseServeConfig(file, await fh.readFile('utf8'))
  } finally {
    await fh.close()
  }
}

/** Merge the flags over the first config file found; check what the receiver needs. */
export async function loadServeConfig(flags: ServeFlags, env: NodeJS.ProcessEnv = process.env, home = os.homedir()): Promise<ServeConfig> {
  let fromFile: FileSettings | undefined
  let configFile: string | undefined
  if (flags.config !== undefined) {
    configFile = path.resolve(flags.config)
    fromFile = await readConfigFile(configFile, true)
  } else if (flags.root === undefined) {
    // With --root on the command line (a systemd unit), no file is consulted at all.
    const fromEnv = env['VDREP_SERVE_CONFIG'] ? path.resolve(env['VDREP_SERVE_CONFIG']) : undefined
    for (const candidate of configCandidates(env, home)) {
      fromFile = await readConfigFile(candidate, candidate === fromEnv)
      if (fromFile) {
        configFile = candidate
        break
      }
    }
  }
  const f = fromFile ?? {}
  const root = flags.root ?? f.root
  if (root === undefined) {
    throw new UsageError('NO_ROOT', 'vdrep serve needs a root to write replicas under, and none is configured', {
      hint: `pass --root DIR, or write {"root": "/srv/replicas"} to one of ${configCandidates(env, home).join(', ')}`,
    })
  }
  return {
    root: path.resolve(root),
    fullsyncPort: flags.fullsyncPort ?? f.fullsyncPort ?? DEFAULT_FULLSYNC_PORT,
    deltaPort: flags.deltaPort ?? f.deltaPort ?? DEFAULT_DELTA_PORT,
    listen: flags.listen ?? f.listen ?? LOOPBACK,
    logFile: flags.logFile !== undefined ? path.resolve(flags.logFile) : f.logFile,
    idleTimeoutMs: flags.idleTimeoutMs ?? f.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    maxConnections: flags.maxConnections ?? f.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    maxConnectionsPerUid: flags.maxConnectionsPerUid ?? f.maxConnectionsPerUid ?? DEFAULT_MAX_CONNECTIONS_PER_UID,
    configFile,
  }
}
