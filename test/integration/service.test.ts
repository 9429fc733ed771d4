// vdrep as a systemd service, through the real binary: sd_notify READY=1 (Type=notify) only once
// the export (or the receiver) accepts connections, STOPPING=1 at a stop, and a unit that
// cannot be told fails instead of pretending; SIGHUP reopens serve's log (logrotate) without
// cutting a session and does not stop a tracker; journal lines carry their fields.
import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import fs from 'node:fs/promises'
import {openSync, closeSync, fstatSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {HashAlgo} from '../../src/core/hash/block-hash.js'
import {FrameType, PROTOCOL_VERSION} from '../../src/core/protocol/frame.js'
import {FrameReader} from '../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../src/core/protocol/frame-writer.js'
import {encodeHello, SyncMode} from '../../src/core/protocol/messages.js'
import {collect, startVdrep, vdrep, VDREP_BIN} from '../helpers/cli.js'
import {makeMixedDisk, tempDir} from '../helpers/disks.js'
import {freePort} from '../helpers/sshd.js'

const MiB = 1 << 20

/** A unix datagram socket bound by python3 (Node has none): every message it gets, in order. */
class NotifyListener {
  readonly messages: string[] = []
  private constructor(
    readonly address: string,
    private readonly child: ChildProcess,
  ) {}

  static async bind(address: string): Promise<NotifyListener> {
    const script = [
      'import socket, sys',
      'a = sys.argv[1]',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      "s.bind('\\0' + a[1:] if a.startswith('@') else a)",
      "print('bound', flush=True)",
      'while True:',
      "    m = s.recv(8192).decode().replace('\\n', '|')",
      '    print(m, flush=True)',
    ].join('\n')
    const child = spawn('python3', ['-c', script, address], {stdio: ['ignore', 'pipe', 'inherit']})
    const l = new NotifyListener(address, child)
    let buf = ''
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (c) => reject(new Error(`python3 exited ${c}`)))
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString()
        let i: number
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i)
          buf = buf.slice(i + 1)
          if (line === 'bound') resolve()
          else l.messages.push(line)
        }
      })
    })
    return l
  }

  async waitFor(re: RegExp, ms = 20_000): Promise<string> {
    const until = Date.now() + ms
    for (;;) {
      const m = this.messages.find((x) => re.test(x))
      if (m !== undefined) return m
      if (Date.now() > until) throw new Error(`no notification ${re} (got ${JSON.stringify(this.messages)})`)
      await new Promise((r) => setTimeout(r, 10))
    }
  }

  close(): void {
    this.child.kill('SIGKILL')
  }
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((r) => child.once('exit', (c) => r(c)))
}

describe('vdrep under systemd: sd_notify, SIGHUP, journal lines', function () {
  this.timeout(60_000)
  let dir: string
  let disk: string
  const cleanup: (() => void)[] = []

  beforeEach(async () => {
    dir = await tempDir('vdrep-svc-')
    disk = path.join(dir, 'vm.img')
    await makeMixedDisk(disk, 2 * MiB)
    assert.equal((await vdrep(['init', disk, '--to', path.join(dir, 'replica.img')])).code, 0)
  })
  afterEach(async () => {
    for (const f of cleanup.splice(0)) f()
    await fs.rm(dir, {recursive: true, force: true})
  })

  for (const where of ['path', 'abstract'] as const) {
    it(`track: READY=1 (${where} socket) only once the NBD export accepts connections; STOPPING=1 at SIGTERM`, async () => {
      const address = where === 'path' ? path.join(dir, 'notify.sock') : `@vdrep-test-notify-${process.pid}-${Date.now()}`
      const listener = await NotifyListener.bind(address)
      cleanup.push(() => listener.close())
      const nbd = path.join(dir, 'nbd.sock')
      const child = startVdrep(['track', disk, '--nbd', `unix:${nbd}`], {env: {NOTIFY_SOCKET: address}})
      cleanup.push(() => child.kill('SIGKILL'))
      const result = collect(child)
      const ready = await listener.waitFor(/READY=1/)
      assert.match(ready, /STATUS=tracking .*vm\.img/)
      // Ready means ready: the export takes a connection right now.
      const sock = net.connect(nbd)
      await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject))
      sock.destroy()
      // logrotate's SIGHUP does not take the VM's disk away.
      child.kill('SIGHUP')
      await new Promise((r) => setTimeout(r, 300))
      assert.equal(child.exitCode, null, 'track still runs after SIGHUP')
      child.kill('SIGTERM')
      const r = await result
      assert.equal(r.code, 0, r.stderr)
      await listener.waitFor(/STOPPING=1/)
      assert.ok(listener.messages.findIndex((m) => /READY=1/.test(m)) < listener.messages.findIndex((m) => /STOPPING=1/.test(m)))
    })
  }

  it('track: a NOTIFY_SOCKET that cannot be written fails the start (exit 1) rather than lying', async () => {
    const nbd = path.join(dir, 'nbd.sock')
    const r = await vdrep(['track', disk, '--nbd', `unix:${nbd}`], {env: {NOTIFY_SOCKET: path.join(dir, 'nobody-listens.sock')}})
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, /cannot notify systemd on .*nobody-listens\.sock/)
    // The tracker stopped cleanly: the next status finds no tracker and a clean record.
    const st = await vdrep(['status', disk, '--json'])
    assert.doesNotMatch(st.stdout, /"state": "Error"/)
  })

  it('track without the addon under NOTIFY_SOCKET: fails and says why (never a silent READY)', async () => {
    const address = path.join(dir, 'notify.sock')
    const listener = await NotifyListener.bind(address)
    cleanup.push(() => listener.close())
    const r = await vdrep(['track', disk, '--nbd', `unix:${path.join(dir, 'nbd.sock')}`], {env: {NOTIFY_SOCKET: address, VDREP_NO_NATIVE: '1'}})
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, /no native addon/)
    assert.deepEqual(listener.messages, [])
  })

  it('serve: READY=1 after listening; SIGHUP reopens a rotated log, a session open across it is not cut', async () => {
    const address = path.join(dir, 'notify.sock')
    const listener = await NotifyListener.bind(address)
    cleanup.push(() => listener.close())
    const root = path.join(dir, 'root')
    await fs.mkdir(root)
    const log = path.join(dir, 'serve.log')
    const ports = [await freePort(), await freePort()]
    const child = startVdrep(['serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1]), '--log-file', log], {
      env: {NOTIFY_SOCKET: address},
    })
    cleanup.push(() => child.kill('SIGKILL'))
    const result = collect(child)
    assert.match(await listener.waitFor(/READY=1/), /STATUS=listening on 127\.0\.0\.1:/)
    // A session in progress: connected, nothing sent yet (the server waits for its hello).
    const sock = net.connect(ports[0], '127.0.0.1')
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject))
    let cut = false
    sock.on('close', () => (cut = true))
    await fs.rename(log, `${log}.1`)
    child.kill('SIGHUP')
    await waitForFile(log, /SIGHUP: log file reopened/)
    assert.equal(child.exitCode, null, 'serve still runs after SIGHUP')
    assert.equal(cut, false, 'the session was not cut')
    sock.end()
    await waitForFile(log, /session \d+ .*closed without a hello/)
    const old = await fs.readFile(`${log}.1`, 'utf8')
    assert.match(old, /listening on/)
    assert.doesNotMatch(old, /session \d+/, 'lines after the SIGHUP go to the new file')
    child.kill('SIGTERM')
    assert.equal((await result).code, 0)
    await listener.waitFor(/STOPPING=1/)
    assert.match(await fs.readFile(log, 'utf8'), /SIGTERM: no new connections/)
  })

  it('serve under the journal (JOURNAL_STREAM is stderr): no timestamp of its own, fields first', async () => {
    const root = path.join(dir, 'root')
    await fs.mkdir(root)
    const errFile = path.join(dir, 'journal.txt')
    const fd = openSync(errFile, 'w')
    const st = fstatSync(fd)
    const ports = [await freePort(), await freePort()]
    const child = spawn(process.execPath, [VDREP_BIN, 'serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])], {
      stdio: ['ignore', 'ignore', fd],
      env: {...process.env, JOURNAL_STREAM: `${st.dev}:${st.ino}`},
    })
    closeSync(fd)
    cleanup.push(() => child.kill('SIGKILL'))
    await waitForFile(errFile, /listening on/)
    // A full sync session for a replica under the root: its line names the replica.
    const sock = net.connect(ports[0], '127.0.0.1')
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject))
    sock.on('error', () => {})
    await new FrameWriter(sock).send(FrameType.HELLO, fullsyncHello('web.img'))
    await new FrameReader(sock).next()
    sock.destroy()
    const line = await waitForFile(errFile, /session \d+/)
    const session = line.split('\n').find((l) => /session \d+/.test(l)) ?? ''
    assert.match(
      session,
      new RegExp(`^disk=${path.join(await fs.realpath(root), 'web.img').replace(/[.]/g, '\\.')} uid=\\d+ session=\\d+ session \\d+ port`),
      session,
    )
    assert.doesNotMatch(session, /^\d{4}-\d\d-\d\dT/, 'the journal stamps the line itself')
    child.kill('SIGTERM')
    assert.equal(await exited(child), 0)
  })
})

function fullsyncHello(replicaPath: string): Buffer {
  return encodeHello({
    version: PROTOCOL_VERSION,
    mode: SyncMode.FULLSYNC,
    hashAlgo: HashAlgo.SHA256,
    blockSize: 65536,
    diskSize: 1 << 20,
    replicaId: Buffer.alloc(16, 9),
    flags: 0,
    lastCommit: Buffer.alloc(16),
    nextCommit: Buffer.alloc(16, 1),
    path: replicaPath,
  })
}

async function waitForFile(file: string, re: RegExp, ms = 15_000): Promise<string> {
  const until = Date.now() + ms
  for (;;) {
    const text = await fs.readFile(file, 'utf8').catch(() => '')
    if (re.test(text)) return text
    if (Date.now() > until) throw new Error(`${file}: no ${re} in ${JSON.stringify(text)}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}
