// The keys vdrep logs in with: the agent first (SSH_AUTH_SOCK, or IdentityAgent), then
// each usable identity file, as an ssh2 `authHandler` that tries them in turn. Nothing
// here prompts: an encrypted key file is skipped with a note to load it into the agent.

import {stat, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import ssh2 from 'ssh2'
import type {AnyAuthMethod, AuthenticationType, NextAuthHandler, ParsedKey} from 'ssh2'
import {UsageError} from '../../errors.js'
import {isEncryptedKey} from './ssh2-error-text.js'

export const DEFAULT_IDENTITY_NAMES = ['id_ed25519', 'id_ecdsa', 'id_rsa'] as const

export interface IdentitySource {
  path: string
  /** Named by the user (flag or option): a missing or unusable file is an error. */
  explicit: boolean
}

export interface LoadedIdentity {
  path: string
  key: ParsedKey
}

export interface Credentials {
  agentSocket?: string
  identities: LoadedIdentity[]
  /** Why sources were skipped, for the error message when login fails. */
  skipped: string[]
}

/** Explicit files, then config files, then the default names under ~/.ssh; each path once. */
export function identitySources(explicit: string[], fromConfig: string[], homeDir: string): IdentitySource[] {
  const seen = new Set<string>()
  const out: IdentitySource[] = []
  const add = (path: string, isExplicit: boolean) => {
    if (seen.has(path)) return
    seen.add(path)
    out.push({path, explicit: isExplicit})
  }
  for (const p of explicit) add(p, true)
  for (const p of fromConfig) add(p, false)
  for (const name of DEFAULT_IDENTITY_NAMES) add(join(homeDir, '.ssh', name), false)
  return out
}

async function loadIdentity(src: IdentitySource, skipped: string[], log?: (line: string) => void): Promise<LoadedIdentity | undefined> {
  let data: Buffer
  try {
    data = await readFile(src.path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (src.explicit) {
      throw new UsageError('IDENTITY_UNREADABLE', `cannot read identity file ${src.path}: ${(err as Error).message}`, {cause: err})
    }
    if (code !== 'ENOENT') {
      skipped.push(`${src.path} (${(err as Error).message})`)
      log?.(`skipping identity file ${src.path}: ${(err as Error).message}`)
    }
    return undefined
  }
  const parsed = ssh2.utils.parseKey(data)
  const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey | undefined) : parsed
  let why: string | undefined
  if (key === undefined) why = 'no key in the file'
  else if (key instanceof Error) {
    why = isEncryptedKey(key) ? 'encrypted; load it into ssh-agent with ssh-add' : key.message
  } else if (!key.isPrivateKey()) why = 'not a private key'
  if (why !== undefined || key === undefined || key instanceof Error) {
    if (src.explicit) throw new UsageError('IDENTITY_UNUSABLE', `cannot use identity file ${src.path}: ${why}`)
    skipped.push(`${src.path} (${why})`)
    log?.(`skipping identity file ${src.path}: ${why}`)
    return undefined
  }
  log?.(`will offer ${key.type} key ${src.path}`)
  return {path: src.path, key}
}

async function usableAgent(socket: string | undefined, skipped: string[], log?: (line: string) => void): Promise<string | undefined> {
  if (socket === undefined || socket === '') return undefined
  try {
    if ((await stat(socket)).isSocket()) {
      log?.(`will try the ssh agent at ${socket}`)
      return socket
    }
  } catch {
    // reported below
  }
  skipped.push(`agent ${socket} (no socket there)`)
  log?.(`not using the ssh agent: no socket at ${socket}`)
  return undefined
}

export async function loadCredentials(sources: IdentitySource[], agentSocket: string | undefined, log?: (line: string) => void): Promise<Credentials> {
  const skipped: string[] = []
  const identities: LoadedIdentity[] = []
  for (const src of sources) {
    const id = await loadIdentity(src, skipped, log)
    if (id) identities.push(id)
  }
  const agent = await usableAgent(agentSocket, skipped, log)
  return agent === undefined ? {identities, skipped} : {agentSocket: agent, identities, skipped}
}

/** What was offered, for messages: "the agent and ~/.ssh/id_ed25519". */
export function describeCredentials(c: Credentials): string {
  const parts = [...(c.agentSocket ? ['the ssh agent'] : []), ...c.identities.map((i) => i.path)]
  return parts.length === 0 ? 'nothing' : parts.join(', ')
}

/** An ssh2 authHandler: the agent, then each identity; `false` when all were tried. */
export function makeAuthHandler(user: string, c: Credentials, log?: (line: string) => void) {
  const methods: Array<{method: AnyAuthMethod; what: string}> = []
  if (c.agentSocket) methods.push({method: {type: 'agent', username: user, agent: c.agentSocket}, what: 'keys from the ssh agent'})
  for (const id of c.identities) methods.push({method: {type: 'publickey', username: user, key: id.key}, what: `key ${id.path}`})
  const noMore = false as unknown as AnyAuthMethod // ssh2 takes `false` for "give up"
  let next = 0
  return (methodsLeft: AuthenticationType[] | null, _partial: boolean | null, done: NextAuthHandler): void => {
    if (methodsLeft !== null && !methodsLeft.includes('publickey')) {
      log?.(`the server accepts no public keys (it offers: ${methodsLeft.join(', ')})`)
      return done(noMore)
    }
    const m = methods[next++]
    if (m === undefined) return done(noMore)
    log?.(`trying ${m.what}`)
    done(m.method)
  }
}
