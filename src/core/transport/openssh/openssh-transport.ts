// The OpenSSH carrier: the system's `ssh` instead of ssh2. Each tunnel is one `ssh -W
// 127.0.0.1:PORT` process (a sync opens one: the full-sync port or the delta port), and the
// receiver's auto-start is one `ssh HOST -- COMMAND`. Each is a login of its own unless the
// user's ssh_config shares one (ControlMaster/ControlPersist), which ssh then applies with
// the rest of that file: ProxyJump, certificates, GSSAPI, FIDO keys, ciphers. Host keys
// follow the ssh2 carrier's rules (openssh-args.ts), and a failure is the same typed error
// (openssh-errors.ts). Same surface as SshTransport, for ssh-connect.ts.

import {spawn} from 'node:child_process'
import type {Duplex} from 'node:stream'
import {TransportError, UsageError} from '../../errors.js'
import type {ExecResult} from '../ssh/ssh-transport.js'
import {ChildStream, type SshChild} from './child-stream.js'
import {execArgs, tunnelArgs, type OpenSshOptions} from './openssh-args.js'
import {openSshError, spawnError} from './openssh-errors.js'
import {OpenSshLog} from './openssh-log.js'

export interface OpenSshTransportOptions extends OpenSshOptions {
  log?: (line: string) => void
  /** Default `ssh` from $PATH. */
  program?: string
}

const MAX_EXEC_OUTPUT = 1 << 20
/** How long a tunnel may take to open (login included) before it is given up. */
const OPEN_TIMEOUT_MS = 60_000
/** How long close() waits for ssh to end after its stdin closed, before SIGTERM. */
const CLOSE_WAIT_MS = 5_000

export class OpenSshTransport {
  /** `user@host:port` as written (ssh_config may resolve it further). */
  readonly label: string
  private readonly children = new Set<SshChild>()
  private closed = false
  private readonly program: string

  constructor(private readonly opts: OpenSshTransportOptions) {
    this.program = opts.program ?? 'ssh'
    this.label = `${opts.user === undefined ? '' : `${opts.user}@`}${opts.host.includes(':') ? `[${opts.host}]` : opts.host}${opts.port === undefined ? '' : `:${opts.port}`}`
  }

  /** Resolves once sshd opened the channel; rejects with the typed error ssh's stderr explains. */
  async openStream(port: number): Promise<Duplex> {
    this.checkUsable()
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError('BAD_PORT', `bad receiver port ${port}`)
    const where = `127.0.0.1:${port} on ${this.label}`
    const child = this.spawn(tunnelArgs(this.opts, port), ['pipe', 'pipe', 'pipe'])
    const stream = new ChildStream(child)
    const log = new OpenSshLog(port)
    return new Promise<Duplex>((resolve, reject) => {
      let settled = false
      const opened = (how: string) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        this.opts.log?.(`opened tunnel to ${where} (ssh pid ${child.pid}${how})`)
        resolve(stream)
      }
      // An ssh that neither says the channel opened nor ends (a ProxyCommand that hangs, a
      // login that waits): ConnectTimeout bounds only the TCP connect, so this bounds the rest.
      const timer = setTimeout(() => {
        if (settled) return
        settled = true
        stream.destroy()
        reject(new TransportError('SSH_TIMEOUT', `ssh to ${this.label} did not open the tunnel to ${where} within ${OPEN_TIMEOUT_MS / 1000} s`))
      }, OPEN_TIMEOUT_MS)
      child.stderr.setEncoding('utf8')
      child.stderr.on('data', (text: string) => {
        if (log.feed(text) === 'opened') opened('')
      })
      // Bytes from the receiver prove the channel open, whatever ssh logged.
      child.stdout.once('data', () => opened(', first bytes'))
      child.once('error', (err: NodeJS.ErrnoException) => {
        const e = spawnError(err, this.program)
        if (!settled) {
          settled = true
          clearTimeout(timer)
          reject(e)
        } else stream.fail(e)
      })
      // 'close', not 'exit': by then stderr is read to its end, so the error can say why.
      child.once('close', (code, signal) => {
        if (code === 0 && settled) return
        const err = this.closed && settled ? undefined : openSshError({messages: log.messages(), code, signal, opened: log.opened}, this.label, where)
        if (!settled) {
          settled = true
          clearTimeout(timer)
          stream.destroy()
          reject(err)
        } else if (err) {
          this.opts.log?.(err.message)
          stream.fail(err)
        }
      })
    })
  }

  /** Runs a command on the replica host; the exit status is returned, not thrown. */
  async exec(command: string): Promise<ExecResult> {
    this.checkUsable()
    const child = this.spawn(execArgs(this.opts, command), ['ignore', 'pipe', 'pipe'])
    const out: Buffer[] = []
    const errOut: Buffer[] = []
    let size = 0
    const keep = (list: Buffer[]) => (chunk: Buffer) => {
      if (size >= MAX_EXEC_OUTPUT) return
      list.push(chunk.subarray(0, MAX_EXEC_OUTPUT - size))
      size += chunk.length
    }
    child.stdout.on('data', keep(out))
    child.stderr.on('data', keep(errOut))
    return new Promise<ExecResult>((resolve, reject) => {
      child.once('error', (err: NodeJS.ErrnoException) => reject(spawnError(err, this.program)))
      child.once('close', (code, signal) => {
        const stderr = Buffer.concat(errOut).toString('utf8')
        // 255 is ssh's own failure (or the command's): a login that failed is thrown as one.
        if (code === 255) {
          const err = openSshError({messages: stderr.split('\n').filter(Boolean), code, signal, opened: false}, this.label, this.label)
          if (err.code !== 'SSH_CONNECT') return reject(err)
        }
        resolve({code: signal ? null : code, stdout: Buffer.concat(out).toString('utf8'), stderr})
      })
    })
  }

  /** Ends every ssh this transport started: stdin closed first, so each ends its channel cleanly. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all([...this.children].map((c) => endChild(c)))
  }

  private spawn(args: string[], stdio: ['pipe' | 'ignore', 'pipe', 'pipe']): SshChild {
    this.opts.log?.(`running ${this.program} ${args.join(' ')}`)
    const child = spawn(this.program, args, {stdio}) as SshChild
    this.children.add(child)
    child.once('close', () => this.children.delete(child))
    return child
  }

  private checkUsable(): void {
    if (this.closed) throw new TransportError('SSH_CLOSED', `the ssh transport to ${this.label} is closed`)
  }
}

async function endChild(child: SshChild): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const ended = new Promise<void>((resolve) => child.once('close', () => resolve()))
  child.stdin?.end()
  const timer = setTimeout(() => child.kill('SIGTERM'), CLOSE_WAIT_MS)
  await ended
  clearTimeout(timer)
}
