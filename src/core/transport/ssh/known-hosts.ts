// known_hosts, read and appended the way OpenSSH does it (sshd(8), "SSH_KNOWN_HOSTS FILE
// FORMAT"): `[@marker] patterns keytype base64 [comment]`, where patterns is a comma list
// of globs (`*`, `?`, `!` negates) or one hashed name `|1|base64(salt)|base64(hmac)`, the
// HMAC-SHA1 keyed by the salt over the host name, or over `[host]:port` off port 22.

import {createHmac, randomBytes, timingSafeEqual} from 'node:crypto'
import {appendFile, mkdir, open, readFile} from 'node:fs/promises'
import {dirname} from 'node:path'
import {HostKeyError} from '../../errors.js'
import {keyTypeOf} from './host-key.js'

export type KnownHostMarker = 'revoked' | 'cert-authority'

export interface KnownHostEntry {
  /** 1-based line number in the file. */
  line: number
  marker?: KnownHostMarker
  /** The host field as written (patterns or a hashed name). */
  hosts: string
  keyType: string
  key: Buffer
}

export type HostKeyCheck =
  | {status: 'match'; entry: KnownHostEntry}
  | {status: 'revoked'; entry: KnownHostEntry}
  | {status: 'changed'; entries: KnownHostEntry[]}
  | {status: 'other-type'; entries: KnownHostEntry[]}
  | {status: 'unknown'}

const HASH_MAGIC = '|1|'
const HASH_SALT_BYTES = 20

/** The name a host is recorded under: `host` on port 22, `[host]:port` elsewhere. */
export function knownHostName(host: string, port = 22): string {
  const name = host.toLowerCase()
  return port === 22 ? name : `[${name}]:${port}`
}

/** A hashed host field, `|1|salt|hmac`, as `HashKnownHosts yes` writes it. */
export function hashHostName(name: string, salt: Buffer = randomBytes(HASH_SALT_BYTES)): string {
  const mac = createHmac('sha1', salt).update(name).digest()
  return `${HASH_MAGIC}${salt.toString('base64')}|${mac.toString('base64')}`
}

function hashedNameMatches(field: string, name: string): boolean {
  const parts = field.slice(HASH_MAGIC.length).split('|')
  if (parts.length !== 2) return false
  const salt = Buffer.from(parts[0]!, 'base64')
  const want = Buffer.from(parts[1]!, 'base64')
  if (salt.length === 0 || want.length !== 20) return false
  const got = createHmac('sha1', salt).update(name).digest()
  return timingSafeEqual(got, want)
}

/** OpenSSH's match_pattern: `*` any run, `?` one character, everything else literal. */
function globMatches(pattern: string, name: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.')
  return new RegExp(`^${re}$`, 's').test(name)
}

/** Whether a host field names `name` (already lower-cased, `[host]:port` form off 22). */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith(HASH_MAGIC)) return hashedNameMatches(field, name)
  let matched = false
  for (const raw of field.split(',')) {
    const negated = raw.startsWith('!')
    const pattern = (negated ? raw.slice(1) : raw).toLowerCase()
    if (pattern === '' || !globMatches(pattern, name)) continue
    if (negated) return false
    matched = true
  }
  return matched
}

export class KnownHosts {
  /** Line numbers that could not be parsed; they are ignored, as OpenSSH does. */
  readonly badLines: number[] = []

  constructor(
    readonly entries: KnownHostEntry[] = [],
    readonly file?: string,
  ) {}

  static parse(text: string, file?: string): KnownHosts {
    const out = new KnownHosts([], file)
    const lines = text.split('\n')
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim()
      if (line === '' || line.startsWith('#')) continue
      const fields = line.split(/[ \t]+/)
      let marker: KnownHostMarker | undefined
      if (fields[0]!.startsWith('@')) {
        const m = fields.shift()!
        if (m === '@revoked') marker = 'revoked'
        else if (m === '@cert-authority') marker = 'cert-authority'
        else {
          out.badLines.push(i + 1)
          continue
        }
      }
      const [hosts, keyType, b64] = fields
      const key = b64 === undefined ? undefined : Buffer.from(b64, 'base64')
      if (hosts === undefined || keyType === undefined || key === undefined || keyTypeOf(key) !== keyType) {
        out.badLines.push(i + 1)
        continue
      }
      out.entries.push({line: i + 1, marker, hosts, keyType, key})
    }
    return out
  }

  /** Reads a known_hosts file; a missing file is an empty one. */
  static async load(file: string): Promise<KnownHosts> {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new KnownHosts([], file)
      throw new HostKeyError('KNOWN_HOSTS_UNREADABLE', `cannot read known_hosts file ${file}: ${(err as Error).message}`, {cause: err})
    }
    return KnownHosts.parse(text, file)
  }

  /** Entries for this host name (`knownHostName()` form), markers included. */
  entriesFor(name: string): KnownHostEntry[] {
    return this.entries.filter((e) => hostFieldMatches(e.hosts, name))
  }

  /** Key types that plain (unmarked) entries record for this host. */
  keyTypesFor(name: string): string[] {
    const types = new Set<string>()
    for (const e of this.entriesFor(name)) if (e.marker === undefined) types.add(e.keyType)
    return [...types]
  }

  /**
   * Checks the key a host presented. Revoked wins over everything; a listed key matches;
   * a different key of the same type means the key changed; only keys of other types
   * means we cannot tell. @cert-authority lines are not used (ssh2 does not check host
   * certificates).
   */
  check(name: string, key: Buffer): HostKeyCheck {
    const type = keyTypeOf(key)
    const found = this.entriesFor(name)
    const revoked = this.entries.find((e) => e.marker === 'revoked' && e.key.equals(key))
    if (revoked) return {status: 'revoked', entry: revoked}
    const plain = found.filter((e) => e.marker === undefined)
    const match = plain.find((e) => e.key.equals(key))
    if (match) return {status: 'match', entry: match}
    const sameType = plain.filter((e) => e.keyType === type)
    if (sameType.length > 0) return {status: 'changed', entries: sameType}
    if (plain.length > 0) return {status: 'other-type', entries: plain}
    return {status: 'unknown'}
  }
}

/** One known_hosts line for a key, hashed by default. */
export function formatKnownHostLine(name: string, key: Buffer, opts: {hash?: boolean} = {}): string {
  const field = opts.hash === false ? name : hashHostName(name)
  return `${field} ${keyTypeOf(key)} ${key.toString('base64')}`
}

/**
 * Appends a hashed entry, creating the file (0600) and its folder (0700) if needed, and
 * starting on a new line if the file does not end with one.
 */
export async function appendKnownHost(file: string, name: string, key: Buffer): Promise<void> {
  try {
    await mkdir(dirname(file), {recursive: true, mode: 0o700})
    let prefix = ''
    const fh = await open(file, 'a+', 0o600)
    try {
      const {size} = await fh.stat()
      if (size > 0) {
        const last = Buffer.alloc(1)
        await fh.read(last, 0, 1, size - 1)
        if (last[0] !== 0x0a) prefix = '\n'
      }
    } finally {
      await fh.close()
    }
    await appendFile(file, `${prefix}${formatKnownHostLine(name, key)}\n`, {mode: 0o600})
  } catch (err) {
    throw new HostKeyError('KNOWN_HOSTS_UNWRITABLE', `cannot add the host key to ${file}: ${(err as Error).message}`, {
      cause: err,
      hint: 'check that the known_hosts file and its folder are writable',
    })
  }
}
