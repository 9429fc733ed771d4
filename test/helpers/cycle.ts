// The whole replication cycle over SSH for integration tests: a real sshd (sshd.ts), a real
// `vdrep serve` on free ports that a test can kill -9 and restart, disks initialised for an
// SSH target under the receiver's root, a `vdrep track` per disk, and qemu-io writing
// through the tracker's NBD export.
import assert from 'node:assert/strict'
import {execFile, spawn, type ChildProcess} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {collect, startVdrep, vdrep, type CliResult} from './cli.js'
import {makeMixedDisk, tempDir} from './disks.js'
import {freePort, startSshd, type Sshd} from './sshd.js'
import {startTracker, type RunningTracker} from '../core/tracker/tracker-helpers.js'

const execFileP = promisify(execFile)

export const MiB = 1 << 20

export async function cmpEqual(a: string, b: string): Promise<boolean> {
  try {
    await execFileP('cmp', ['-s', a, b])
    return true
  } catch {
    return false
  }
}

export async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  )
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Poll `cond` every `everyMs` until it holds; fail with `what` after `timeoutMs`. */
export async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 30_000, everyMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    if (await cond()) return
    if (Date.now() > end) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

/** A `vdrep serve` child that can be killed (-9 too) and started again on the same ports. */
export class Serve {
  child!: ChildProcess
  done!: Promise<CliResult>
  private out = ''
  /** Everything every incarnation wrote to stderr (its log). */
  get log(): string {
    return this.out
  }

  constructor(
    readonly root: string,
    readonly ports: [number, number],
  ) {}

  async start(): Promise<void> {
    const mark = this.out.length
    this.child = startVdrep(['serve', '--root', this.root, '--fullsync-port', String(this.ports[0]), '--delta-port', String(this.ports[1])])
    this.child.stderr!.on('data', (d: Buffer) => (this.out += d.toString()))
    this.done = collect(this.child)
    await waitFor(
      'vdrep serve to listen',
      () => {
        if (this.child.exitCode !== null) assert.fail(`vdrep serve exited ${this.child.exitCode}: ${this.out.slice(mark)}`)
        return /listening on/.test(this.out.slice(mark))
      },
      15_000,
      25,
    )
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  async kill9(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL')
    await this.done
  }

  async stop(): Promise<CliResult> {
    if (this.running) this.child.kill('SIGTERM')
    return this.done
  }
}

export interface SshDisk {
  name: string
  disk: string
  replica: string
  /** The tracker's NBD socket and the qemu-io URI of its export. */
  sock: string
  uri: string
}

/** sshd + vdrep serve + a temp folder; disks go in `dir`, replicas under `root`. */
export class SshCycle {
  /** The client sees the harness' files only: no real ~/.ssh, no agent. */
  env: NodeJS.ProcessEnv = {}
  private trackers: RunningTracker[] = []

  private constructor(
    readonly sshd: Sshd,
    readonly dir: string,
    readonly root: string,
    readonly serve: Serve,
  ) {}

  static async start(): Promise<SshCycle> {
    const sshd = await startSshd()
    const dir = await tempDir('vdrep-cycle-')
    const root = path.join(dir, 'root')
    await fs.mkdir(root)
    await fs.mkdir(path.join(dir, 'home'))
    const serve = new Serve(root, [await freePort(), await freePort()])
    await serve.start()
    const c = new SshCycle(sshd, dir, root, serve)
    c.env = {HOME: path.join(dir, 'home'), SSH_AUTH_SOCK: ''}
    return c
  }

  target(replica: string): string {
    return `${this.sshd.user}@127.0.0.1:${this.sshd.port}:${replica}`
  }

  /** `vdrep init` for an SSH target; the serve command fails at once, so a stopped receiver is never auto-started elsewhere. */
  async init(disk: string, replica: string, extra: string[] = []): Promise<CliResult> {
    return this.vdrep([
      'init',
      disk,
      '--to',
      this.target(replica),
      '--known-hosts',
      this.sshd.knownHostsFile,
      '--identity',
      this.sshd.clientKey.path,
      '--fullsync-port',
      String(this.serve.ports[0]),
      '--delta-port',
      String(this.serve.ports[1]),
      '--serve-command',
      'false',
      ...extra,
    ])
  }

  /** A mixed disk, initialised and fully synced over SSH. */
  async newDisk(name: string, size: number, opts: {fullsync?: boolean} = {}): Promise<SshDisk> {
    const disk = path.join(this.dir, `${name}.img`)
    const replica = path.join(this.root, `${name}.img`)
    const sock = path.join(this.dir, `${name}.nbd`)
    await makeMixedDisk(disk, size, name)
    const i = await this.init(disk, replica)
    assert.equal(i.code, 0, i.stderr)
    if (opts.fullsync !== false) {
      const f = await this.vdrep(['fullsync', disk])
      assert.equal(f.code, 0, f.stderr)
      assert.ok(await cmpEqual(disk, replica), 'the full sync left a replica that differs')
    }
    return {name, disk, replica, sock, uri: `nbd+unix:///${name}.img?socket=${sock}`}
  }

  vdrep(args: string[]): Promise<CliResult> {
    return vdrep(args, {env: this.env})
  }

  startVdrep(args: string[]): ChildProcess {
    return startVdrep(args, {env: this.env})
  }

  async track(d: SshDisk): Promise<RunningTracker> {
    const t = await startTracker(d.disk, ['--nbd', `unix:${d.sock}`])
    this.trackers.push(t)
    return t
  }

  /** SIGTERM the tracker and check it stopped cleanly. */
  async untrack(t: RunningTracker): Promise<void> {
    const r = await t.stop('SIGTERM')
    assert.equal(r.code, 0, r.stderr)
    this.trackers = this.trackers.filter((x) => x !== t)
  }

  /** Kill whatever tracker a failed test left running. */
  async killTrackers(): Promise<void> {
    await Promise.all(this.trackers.map(async (t) => (t.child.exitCode === null && t.child.signalCode === null ? t.stop('SIGKILL') : undefined)))
    this.trackers = []
  }

  async stop(): Promise<void> {
    await this.killTrackers()
    await Promise.all([this.serve.stop(), this.sshd.stop()])
    await fs.rm(this.dir, {recursive: true, force: true})
  }
}

export interface QemuIoResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Run qemu-io on an NBD URI with the commands on stdin; fails on a non-zero exit or an error line. */
export async function qemuIo(uri: string, commands: string[]): Promise<string> {
  const q = spawn('qemu-io', ['-f', 'raw', uri], {stdio: ['pipe', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  q.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  q.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  q.stdin.on('error', () => {})
  const code = await new Promise<number | null>((resolve, reject) => {
    q.on('error', reject)
    q.on('close', (c) => resolve(c))
    q.stdin.end(commands.join('\n') + '\nquit\n')
  })
  if (code !== 0 || /error|fail|mismatch/i.test(stdout + stderr))
    throw new Error(`qemu-io ${uri} exited ${code}\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`)
  return stdout
}

/** sha256 of a file, hex. */
export async function sha256(file: string): Promise<string> {
  const {stdout} = await execFileP('sha256sum', [file], {maxBuffer: 1 << 20})
  return stdout.split(' ')[0]!
}
