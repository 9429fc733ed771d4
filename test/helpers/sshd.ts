// Test harness: a real OpenSSH sshd on 127.0.0.1, in the foreground, with its own host
// keys, config, authorized_keys, a client key pair and a known_hosts file, all in a temp
// folder; plus an ssh-agent holding a key. Needs Debian's openssh-server (scripts/
// test-setup.sh installs it).

import {execFile, spawn, type ChildProcess} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {appendFile, mkdir, mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir, userInfo} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {freePort} from './ports.js'
import type {SshTransportOptions} from '../../src/core/transport/ssh/ssh-transport.js'

const run = promisify(execFile)
export {freePort}
export const SSHD = '/usr/sbin/sshd'

export type HostKeyType = 'ed25519' | 'ecdsa'

export interface KeyPair {
  path: string
  pubPath: string
  /** `type base64 comment` */
  pub: string
  type: string
  /** The public key blob. */
  blob: Buffer
}

export interface Sshd {
  /** 127.0.0.1, or the listen address asked for (a WAN's replica side). */
  host: string
  port: number
  pid: number
  dir: string
  user: string
  hostKeys: Record<HostKeyType, KeyPair>
  clientKey: KeyPair
  /** known_hosts holding the ed25519 host key as `[127.0.0.1]:port`. */
  knownHostsFile: string
  /** The `[127.0.0.1]:port type base64` line for one host key. */
  knownHostsLine(type?: HostKeyType): string
  /** `SHA256:...` as OpenSSH prints it. */
  fingerprint(type?: HostKeyType): string
  /** Adds a public key line to authorized_keys. */
  authorize(pub: string): Promise<void>
  /** SIGKILLs every session process (descendants of the listener); returns how many. */
  killSessions(): Promise<number>
  /** sshd's stderr so far (-e), for debugging failures. */
  log(): string
  stop(): Promise<void>
}

export async function makeKeyPair(dir: string, name: string, type: string): Promise<KeyPair> {
  const path = join(dir, name)
  await run('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `vdrep-test-${name}`, '-f', path])
  const pub = (await readFile(`${path}.pub`, 'utf8')).trim()
  const [keyType, b64] = pub.split(' ') as [string, string]
  return {path, pubPath: `${path}.pub`, pub, type: keyType, blob: Buffer.from(b64, 'base64')}
}

export function fingerprintOf(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')
}

async function descendants(pid: number): Promise<number[]> {
  let out = ''
  try {
    out = (await run('pgrep', ['-P', String(pid)])).stdout
  } catch {
    return [] // pgrep exits 1 when there are none
  }
  const kids = out.split('\n').filter(Boolean).map(Number)
  const all = [...kids]
  for (const k of kids) all.push(...(await descendants(k)))
  return all
}

function sshdConfig(dir: string, port: number, users: string[], extra: string[], listen = '127.0.0.1'): string {
  return [
    `ListenAddress ${listen}`,
    `Port ${port}`,
    `HostKey ${join(dir, 'host_ed25519')}`,
    `HostKey ${join(dir, 'host_ecdsa')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PermitRootLogin prohibit-password',
    'StrictModes no',
    'UsePAM no',
    'AllowTcpForwarding yes',
    'X11Forwarding no',
    'PrintMotd no',
    'LogLevel VERBOSE',
    `AllowUsers ${users.join(' ')}`,
    ...extra,
    '',
  ].join('\n')
}

async function spawnSshd(config: string, netns?: string): Promise<{child: ChildProcess; stderr: string[]}> {
  // `ip netns exec` execs sshd in the namespace: the child's pid is sshd's.
  const argv = [SSHD, '-D', '-e', '-f', config]
  const child = netns
    ? spawn('ip', ['netns', 'exec', netns, ...argv], {stdio: ['ignore', 'ignore', 'pipe']})
    : spawn(argv[0], argv.slice(1), {stdio: ['ignore', 'ignore', 'pipe']})
  const stderr: string[] = []
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('sshd did not start listening within 10 s')), 10_000)
    const fail = (err: Error) => {
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(new Error(`${err.message}\n${stderr.join('')}`))
    }
    child.stderr!.setEncoding('utf8')
    child.stderr!.on('data', (text: string) => {
      stderr.push(text)
      if (/Server listening on/.test(stderr.join(''))) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('error', fail)
    child.once('exit', (code) => fail(new Error(`sshd exited with ${code}`)))
  })
  child.removeAllListeners('exit')
  return {child, stderr}
}

export interface SshdOptions {
  /** Extra users for AllowUsers (root and the current user are always allowed). */
  users?: string[]
  /** Extra sshd_config lines. */
  config?: string[]
  /** Run sshd inside this network namespace (test/helpers/netns.ts)... */
  netns?: string
  /** ...listening on this address (default 127.0.0.1); known_hosts names it. */
  listenAddress?: string
}

export async function startSshd(opts: SshdOptions = {}): Promise<Sshd> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} not found: apt-get install openssh-server (scripts/test-setup.sh does it)`)
  await mkdir('/run/sshd', {recursive: true, mode: 0o755})
  const dir = await mkdtemp(join(tmpdir(), 'vdrep-sshd-'))
  const [ed25519, ecdsa, clientKey] = await Promise.all([
    makeKeyPair(dir, 'host_ed25519', 'ed25519'),
    makeKeyPair(dir, 'host_ecdsa', 'ecdsa'),
    makeKeyPair(dir, 'client_ed25519', 'ed25519'),
  ])
  const hostKeys = {ed25519, ecdsa}
  await writeFile(join(dir, 'authorized_keys'), clientKey.pub + '\n', {mode: 0o600})
  const user = userInfo().username
  const users = [...new Set(['root', user, ...(opts.users ?? [])])]
  const configPath = join(dir, 'sshd_config')

  let started: {child: ChildProcess; stderr: string[]} | undefined
  let port = 0
  for (let attempt = 0; started === undefined; attempt++) {
    port = await freePort()
    await writeFile(configPath, sshdConfig(dir, port, users, opts.config ?? [], opts.listenAddress))
    try {
      started = await spawnSshd(configPath, opts.netns)
    } catch (err) {
      if (attempt >= 3 || !/Address already in use|Bind to port/.test(String(err))) throw err
    }
  }
  const {child, stderr} = started
  const host = opts.listenAddress ?? '127.0.0.1'
  const line = (type: HostKeyType = 'ed25519') => `[${host}]:${port} ${hostKeys[type].type} ${hostKeys[type].blob.toString('base64')}`
  const knownHostsFile = join(dir, 'known_hosts')
  await writeFile(knownHostsFile, line('ed25519') + '\n')

  const killSessions = async (): Promise<number> => {
    const pids = await descendants(child.pid!)
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    return pids.length
  }

  return {
    host,
    port,
    pid: child.pid!,
    dir,
    user,
    hostKeys,
    clientKey,
    knownHostsFile,
    knownHostsLine: line,
    fingerprint: (type: HostKeyType = 'ed25519') => fingerprintOf(hostKeys[type].blob),
    authorize: (pub: string) => appendFile(join(dir, 'authorized_keys'), pub.trim() + '\n'),
    killSessions,
    log: () => stderr.join(''),
    async stop() {
      await killSessions()
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        await exited
      }
      await rm(dir, {recursive: true, force: true})
    },
  }
}

export interface Agent {
  socket: string
  pid: number
  stop(): Promise<void>
}

/** Starts `ssh-agent -D -a SOCKET` and `ssh-add`s the given keys. */
export async function startAgent(keyPaths: string[]): Promise<Agent> {
  const dir = await mkdtemp(join(tmpdir(), 'vdrep-agent-'))
  const socket = join(dir, 'agent.sock')
  const child = spawn('ssh-agent', ['-D', '-a', socket], {stdio: 'ignore'})
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      if ((await stat(socket)).isSocket()) break
    } catch {
      // not yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL')
      throw new Error('ssh-agent did not create its socket within 10 s')
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  for (const key of keyPaths) await run('ssh-add', ['-q', key], {env: {...process.env, SSH_AUTH_SOCK: socket}})
  return {
    socket,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        await exited
      }
      await rm(dir, {recursive: true, force: true})
    },
  }
}

/** Transport options that use only the harness' files, never the real ~/.ssh or agent. */
export function sshOptions(sshd: Sshd, extra: Partial<SshTransportOptions> = {}): SshTransportOptions {
  return {
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    knownHostsFile: sshd.knownHostsFile,
    identityFiles: [sshd.clientKey.path],
    useAgent: false,
    configFile: join(sshd.dir, 'no-ssh-config'),
    homeDir: sshd.dir,
    ...extra,
  }
}
