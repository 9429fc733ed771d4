// `vdrep serve` on its own, through the real binary and raw TCP clients on 127.0.0.1: the
// listen address, the config file, the peer-uid check against another local user, one
// writer per replica (in one receiver and across two), several replicas at once, SIGTERM.
import assert from 'node:assert/strict'
import {execFile, type ChildProcess} from 'node:child_process'
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import {promisify} from 'node:util'
import {HashAlgo} from '../../src/core/hash/block-hash.js'
import {FrameType, PROTOCOL_VERSION} from '../../src/core/protocol/frame.js'
import {FrameReader, type Frame} from '../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../src/core/protocol/frame-writer.js'
import {decodeError, encodeHello, SyncMode} from '../../src/core/protocol/messages.js'
import {collect, startVdrep, vdrep} from '../helpers/cli.js'
import {waitFor} from '../helpers/cycle.js'
import {tempDir} from '../helpers/disks.js'
import {freePort} from '../helpers/sshd.js'
import {ensureUser as ensureSystemUser} from '../helpers/users.js'

const run = promisify(execFile)
const OTHER_USER = 'vdrep-peer'

/** One source for every hello here: a replica of another source would be refused (REPLICA_FOREIGN). */
const SOURCE_ID = Buffer.alloc(16, 9)

function helloBytes(replicaPath: string, mode: number = SyncMode.FULLSYNC): Buffer {
  return encodeHello({
    version: PROTOCOL_VERSION,
    mode,
    hashAlgo: HashAlgo.SHA256,
    blockSize: 65536,
    diskSize: 1 << 20,
    replicaId: SOURCE_ID,
    flags: 0,
    lastCommit: Buffer.alloc(16),
    nextCommit: Buffer.alloc(16, 1),
    path: replicaPath,
  })
}

/** A client that sends HELLO and reads the first frame back (null: closed without one). */
async function rawHello(port: number, replicaPath: string, mode: number = SyncMode.FULLSYNC): Promise<{first: Frame | null; socket: net.Socket}> {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  socket.on('error', () => {})
  const reader = new FrameReader(socket)
  await new FrameWriter(socket).send(FrameType.HELLO, helloBytes(replicaPath, mode))
  return {first: await reader.next().catch(() => null), socket}
}

function errorCode(f: Frame | null): string | undefined {
  return f?.type === FrameType.ERROR ? decodeError(f.payload).code : undefined
}

interface Serve {
  child: ChildProcess
  ports: [number, number]
  stderr(): string
  stop(): Promise<number | null>
}

async function startServe(root: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Serve> {
  const ports: [number, number] = [await freePort(), await freePort()]
  const child = startVdrep(['serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1]), ...extra], {env})
  let err = ''
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const result = collect(child)
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (/listening on/.test(err)) done(resolve)
      else if (child.exitCode !== null) done(() => reject(new Error(`serve exited ${child.exitCode}: ${err}`)))
    }, 25)
    const done = (f: () => void) => {
      clearInterval(timer)
      f()
    }
  })
  return {
    child,
    ports,
    stderr: () => err,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      return (await result).code
    },
  }
}

async function ensureUser(name: string): Promise<boolean> {
  return process.getuid?.() === 0 && ensureSystemUser(name, {shell: '/bin/sh'})
}

/** Poll until `test` holds (the receiver's log reaches us through a pipe, a little later). */
async function eventually(test: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms
  while (!test() && Date.now() < end) await new Promise((r) => setTimeout(r, 25))
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  )
}

describe('vdrep serve (receiver on 127.0.0.1)', function () {
  this.timeout(60_000)
  let dir: string
  let root: string
  const started: Serve[] = []

  beforeEach(async () => {
    dir = await tempDir('vdrep-serve-')
    root = path.join(dir, 'root')
    await fs.mkdir(root)
  })
  afterEach(async () => {
    for (const s of started.splice(0)) await s.stop()
    await fs.rm(dir, {recursive: true, force: true})
  })
  const serve = async (...args: Parameters<typeof startServe>) => {
    const s = await startServe(...args)
    started.push(s)
    return s
  }

  it('refuses to listen anywhere but 127.0.0.1', async () => {
    for (const addr of ['0.0.0.0', '::', '192.0.2.1']) {
      const r = await vdrep(['serve', '--root', root, '--listen', addr, '--fullsync-port', String(await freePort())])
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, new RegExp(`listens on 127\\.0\\.0\\.1 only, not on ${addr.replace(/\./g, '\\.')}`))
    }
  })

  it('without a root anywhere, says where to configure one', async function () {
    const r = await vdrep(['serve'], {env: {HOME: dir, XDG_CONFIG_HOME: '', VDREP_SERVE_CONFIG: ''}})
    if (await exists('/etc/vdrep/serve.json')) this.skip()
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /needs a root/)
    assert.match(r.stderr, /\.config\/vdrep\/serve\.json/)
  })

  it('reads root and ports from the config file, and refuses one other users may write', async () => {
    const [p1, p2] = [await freePort(), await freePort()]
    const cfg = path.join(dir, 'serve.json')
    await fs.writeFile(cfg, JSON.stringify({root, fullsyncPort: p1, deltaPort: p2, idleTimeout: '30s'}), {mode: 0o644})
    const child = startVdrep(['serve', '--config', cfg])
    const res = collect(child)
    // Stop it once it says it listens (or has exited): the assertions below read that line.
    let said = ''
    child.stderr!.on('data', (d: Buffer) => (said += d.toString()))
    await waitFor('vdrep serve to listen', () => /listening on/.test(said) || child.exitCode !== null, 15_000, 25)
    child.kill('SIGTERM')
    const out = await res
    assert.equal(out.code, 0, out.stderr)
    assert.match(out.stderr, new RegExp(`listening on 127\\.0\\.0\\.1:${p1},${p2} \\(root ${root}`))
    await fs.chmod(cfg, 0o666)
    const bad = await vdrep(['serve', '--config', cfg])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /other users may write it/)
    await fs.writeFile(cfg, '{"root": "relative/dir"}', {mode: 0o600})
    await fs.chmod(cfg, 0o600)
    const rel = await vdrep(['serve', '--config', cfg])
    assert.equal(rel.code, 2)
    assert.match(rel.stderr, /not an absolute path/)
  })

  it("refuses another local user's process on its port; nothing is written", async function () {
    if (!(await ensureUser(OTHER_USER))) this.skip()
    const s = await serve(root)
    const client = `
      const net = require('net'); const s = net.connect(${s.ports[0]}, '127.0.0.1'); const got = [];
      s.on('connect', () => s.write(Buffer.from(process.argv[1], 'hex')));
      s.on('data', (d) => got.push(d)); s.on('error', () => {});
      s.on('close', () => { process.stdout.write(Buffer.concat(got).toString('hex')); });`
    const {stdout} = await run('runuser', ['-u', OTHER_USER, '--', process.execPath, '-e', client, helloBytes('stolen.img').toString('hex')])
    const back = Buffer.from(stdout.trim(), 'hex')
    if (back.length > 0) {
      assert.equal(back.readUInt8(2), FrameType.ERROR, 'only an ERROR may come back')
      assert.equal(decodeError(back.subarray(8)).code, 'PEER_REFUSED')
    }
    assert.deepEqual(await fs.readdir(root), [], 'nothing may be written for another user')
    const uid = Number((await run('id', ['-u', OTHER_USER])).stdout)
    await eventually(() => /refused a connection/.test(s.stderr()))
    assert.match(s.stderr(), new RegExp(`refused a connection from 127\\.0\\.0\\.1:\\d+ owned by uid ${uid}; only uid ${process.getuid!()}`))
    // The receiver's own user gets through to the protocol.
    const mine = await rawHello(s.ports[0], 'mine.img')
    assert.equal(mine.first?.type, FrameType.HELLO_OK)
    mine.socket.destroy()
  })

  it('refuses its own --log-file and config file as replicas (by path, through a symlinked folder, by hard link); the log is untouched', async () => {
    const logs = path.join(root, 'logs')
    await fs.mkdir(logs, {mode: 0o755})
    const logFile = path.join(logs, 'serve.log')
    const cfg = path.join(root, 'serve.json')
    await fs.writeFile(cfg, JSON.stringify({root}), {mode: 0o600})
    await fs.symlink(logs, path.join(root, 'via'))
    await fs.link(cfg, path.join(root, 'other-name.json'))
    const s = await serve(root, ['--log-file', logFile, '--config', cfg])
    const before = await fs.readFile(logFile)
    const beforeCfg = await fs.readFile(cfg)
    for (const p of [logFile, 'logs/serve.log', 'via/serve.log', 'serve.json', 'other-name.json']) {
      const r = await rawHello(s.ports[0], p)
      assert.equal(errorCode(r.first), 'REPLICA_IS_RECEIVER_FILE', `${p} was accepted as a replica`)
      r.socket.destroy()
    }
    assert.ok((await fs.readFile(logFile)).subarray(0, before.length).equals(before), 'the log file was written over')
    assert.ok((await fs.readFile(cfg)).equals(beforeCfg), 'the config file was written over')
    const fine = await rawHello(s.ports[0], 'logs/replica.img')
    assert.equal(fine.first?.type, FrameType.HELLO_OK, 'other paths beside them are served')
    fine.socket.destroy()
  })

  it('serves several replicas at once, one writer per replica, on the port of each mode', async () => {
    const s = await serve(root)
    const a = await rawHello(s.ports[0], 'a.img')
    const b = await rawHello(s.ports[0], path.join(root, 'b.img'))
    assert.equal(a.first?.type, FrameType.HELLO_OK)
    assert.equal(b.first?.type, FrameType.HELLO_OK, 'an absolute path under the root is accepted')
    const again = await rawHello(s.ports[0], 'a.img')
    assert.equal(errorCode(again.first), 'LOCKED')
    const wrongPort = await rawHello(s.ports[1], 'c.img', SyncMode.FULLSYNC)
    assert.equal(errorCode(wrongPort.first), 'WRONG_PORT')
    for (const c of [a, b, again, wrongPort]) c.socket.destroy()
    await new Promise((r) => setTimeout(r, 300))
    const after = await rawHello(s.ports[0], 'a.img')
    assert.equal(after.first?.type, FrameType.HELLO_OK, 'the replica is free again once its writer left')
    after.socket.destroy()
  })

  it('two receiver processes never write one replica at once (flock)', async () => {
    const s1 = await serve(root)
    const s2 = await serve(root)
    const a = await rawHello(s1.ports[0], 'shared.img')
    assert.equal(a.first?.type, FrameType.HELLO_OK)
    const b = await rawHello(s2.ports[0], 'shared.img')
    assert.equal(errorCode(b.first), 'LOCKED')
    await eventually(() => /another vdrep process .* is writing/.test(s2.stderr()))
    assert.match(s2.stderr(), /another vdrep process .* is writing/)
    a.socket.destroy()
    b.socket.destroy()
  })

  it('on SIGTERM stops accepting, cuts running sessions and exits 0', async () => {
    const s = await serve(root)
    const a = await rawHello(s.ports[0], 'x.img')
    assert.equal(a.first?.type, FrameType.HELLO_OK)
    const closed = new Promise((r) => a.socket.once('close', r))
    const t = Date.now()
    const code = await s.stop()
    assert.equal(code, 0, s.stderr())
    await closed
    assert.ok(Date.now() - t < 15_000)
    assert.match(s.stderr(), /SIGTERM: no new connections; 1 session\(s\) running/)
    assert.match(s.stderr(), /1 session\(s\) cut/)
    assert.match(s.stderr(), /session 1 port \d+ uid \d+: fullsync .*x\.img: .*\(\d+\.\d s\)/)
  })
})
