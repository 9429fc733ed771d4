// The receiver behind real sshd: the replica path stays under the root (`..`, absolute
// elsewhere, a symlink out), sshd's tunnel carries the logged-in user's uid (the fact the
// peer check rests on), auto-start of `vdrep serve --daemon` over SSH exec, and the
// locked-down key (restrict,port-forwarding,permitopen=...) with a pre-started receiver.
import assert from 'node:assert/strict'
import {execFile, spawn, type ChildProcess} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {HashAlgo} from '../../src/core/hash/block-hash.js'
import {FrameType, PROTOCOL_VERSION} from '../../src/core/protocol/frame.js'
import {FrameReader, type Frame} from '../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../src/core/protocol/frame-writer.js'
import {decodeError, encodeHello, SyncMode} from '../../src/core/protocol/messages.js'
import {connectSsh} from '../../src/core/transport/ssh/ssh-transport.js'
import {collect, startVdrep, vdrep, VDREP_BIN, type CliResult} from '../helpers/cli.js'
import {makeMixedDisk, seededBytes, tempDir} from '../helpers/disks.js'
import {readReplicaState} from '../../src/core/receiver/replica-state.js'
import {freePort, makeKeyPair, sshOptions, startSshd, type Sshd} from '../helpers/sshd.js'
import {ensureUser} from '../helpers/users.js'

const run = promisify(execFile)
const MiB = 1 << 20
const OTHER_USER = 'vdrep-peer'

async function cmpEqual(a: string, b: string): Promise<boolean> {
  return run('cmp', ['-s', a, b]).then(
    () => true,
    () => false,
  )
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  )
}

async function until(test: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

interface Serve {
  child: ChildProcess
  done: Promise<CliResult>
  log(): string
}

async function startServe(args: string[], user?: string): Promise<Serve> {
  const child = user ? spawn('runuser', ['-u', user, '--', process.execPath, VDREP_BIN, ...args], {stdio: ['ignore', 'pipe', 'pipe']}) : startVdrep(args)
  let log = ''
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()))
  const done = collect(child)
  await until(() => /listening on/.test(log) || child.exitCode !== null, 15_000, 'vdrep serve')
  if (child.exitCode !== null) throw new Error(`vdrep serve exited: ${log}`)
  return {child, done, log: () => log}
}

async function stopServe(s: Serve): Promise<CliResult> {
  s.child.kill('SIGTERM')
  return s.done
}

/** Over an SSH tunnel as `user`: send HELLO for `replicaPath`, return the first frame back. */
async function helloOverSsh(sshd: Sshd, port: number, replicaPath: string, opts: {user?: string; identity?: string} = {}): Promise<Frame | null> {
  const t = await connectSsh(sshOptions(sshd, {...(opts.user ? {user: opts.user} : {}), ...(opts.identity ? {identityFiles: [opts.identity]} : {})}))
  try {
    const stream = await t.openStream(port)
    const reader = new FrameReader(stream)
    const hello = encodeHello({
      version: PROTOCOL_VERSION,
      mode: SyncMode.FULLSYNC,
      hashAlgo: HashAlgo.SHA256,
      blockSize: 65536,
      diskSize: MiB,
      replicaId: randomBytes(16),
      flags: 0,
      lastCommit: Buffer.alloc(16),
      nextCommit: Buffer.alloc(16, 1),
      path: replicaPath,
    })
    await new FrameWriter(stream).send(FrameType.HELLO, hello)
    return await reader.next().catch(() => null)
  } finally {
    await t.close()
  }
}

function errorOf(f: Frame | null): {code: string; message: string} {
  assert.equal(f?.type, FrameType.ERROR, 'expected an ERROR frame')
  return decodeError(f!.payload)
}

describe('vdrep serve behind real sshd', function () {
  this.timeout(120_000)
  let sshd: Sshd
  let dir: string
  let root: string
  let outside: string
  let env: NodeJS.ProcessEnv

  before(async () => {
    sshd = await startSshd({users: [OTHER_USER]})
    dir = await tempDir('vdrep-ssh-serve-')
    root = path.join(dir, 'root')
    outside = path.join(dir, 'outside')
    await fs.mkdir(root)
    await fs.mkdir(outside)
    await fs.mkdir(path.join(dir, 'home'))
    env = {HOME: path.join(dir, 'home'), SSH_AUTH_SOCK: ''}
  })
  after(async () => {
    await sshd.stop()
    await fs.rm(dir, {recursive: true, force: true})
  })

  async function init(
    name: string,
    to: string,
    ports: [number, number],
    extra: string[] = [],
    identity = sshd.clientKey.path,
    size = 4 * MiB,
  ): Promise<string> {
    const disk = path.join(dir, `${name}.img`)
    await makeMixedDisk(disk, size, name)
    const r = await vdrep(
      [
        'init',
        disk,
        '--force',
        '--to',
        `${sshd.user}@127.0.0.1:${sshd.port}:${to}`,
        '--identity',
        identity,
        '--known-hosts',
        sshd.knownHostsFile,
        '--fullsync-port',
        String(ports[0]),
        '--delta-port',
        String(ports[1]),
        ...extra,
      ],
      {env},
    )
    assert.equal(r.code, 0, r.stderr)
    return disk
  }

  describe('with a running receiver', () => {
    let serve: Serve
    let ports: [number, number]
    before(async () => {
      ports = [await freePort(), await freePort()]
      serve = await startServe(['serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])])
    })
    after(async () => {
      assert.equal((await stopServe(serve)).code, 0)
    })

    it('refuses replica paths outside the root, and writes nothing outside', async () => {
      await fs.symlink(outside, path.join(root, 'escape'))
      const cases: Array<[string, RegExp]> = [
        ['../outside/a.img', /contains '\.\.'/],
        [`${root}/../outside/b.img`, /contains '\.\.'/],
        [path.join(outside, 'c.img'), /not under the root/],
        ['escape/d.img', /symlink that leads out of the root/],
        [path.join(root, 'escape', 'e.img'), /symlink that leads out of the root/],
      ]
      for (const [p, why] of cases) {
        const e = errorOf(await helloOverSsh(sshd, ports[0], p))
        assert.equal(e.code, 'PATH_OUTSIDE_ROOT', p)
        assert.match(e.message, why, p)
      }
      // Through the CLI: `..` is refused at init already, the others by the receiver (exit 2).
      const disk0 = path.join(dir, 'dots.img')
      await makeMixedDisk(disk0, MiB)
      const dots = await vdrep(['init', disk0, '--to', `${sshd.user}@127.0.0.1:${sshd.port}:${root}/../outside/x.img`], {env})
      assert.equal(dots.code, 2)
      assert.match(dots.stderr, /contains '\.\.'/)
      for (const target of [path.join(outside, 'f.img'), path.join(root, 'escape', 'g.img')]) {
        const disk = await init('outside', target, ports)
        const r = await vdrep(['fullsync', disk], {env})
        assert.equal(r.code, 2, r.stderr)
        assert.match(r.stderr, /refusing replica path/)
      }
      // A symlink as the final component is refused too.
      await fs.symlink(path.join(outside, 'h.img'), path.join(root, 'h.img'))
      const disk = await init('finallink', path.join(root, 'h.img'), ports)
      const r = await vdrep(['fullsync', disk], {env})
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, /symlink/)
      assert.deepEqual(await fs.readdir(outside), [], 'nothing may be written outside the root')
    })

    it("refuses a tunnel of a login as another user (sshd's socket carries that user's uid)", async function () {
      if (process.getuid?.() !== 0) this.skip()
      // useradd locks the account ('!'), and sshd refuses locked accounts: '*' = no password, not locked.
      assert.ok(ensureUser(OTHER_USER, {shell: '/bin/sh', unlocked: true}), `could not make the user ${OTHER_USER}`)
      await fs.chmod(sshd.dir, 0o755) // the harness' authorized_keys is read as the logging-in user
      await fs.chmod(path.join(sshd.dir, 'authorized_keys'), 0o644)
      const uid = Number((await run('id', ['-u', OTHER_USER])).stdout)
      const e = errorOf(await helloOverSsh(sshd, ports[0], 'theirs.img', {user: OTHER_USER}))
      assert.equal(e.code, 'PEER_REFUSED')
      assert.match(e.message, new RegExp(`came from uid ${uid}`))
      assert.ok(!(await exists(path.join(root, 'theirs.img'))))

      // And the other way round: a receiver run by that user accepts its own logins, not root's.
      const theirRoot = path.join(dir, 'their-root')
      await fs.mkdir(theirRoot)
      await run('chown', [OTHER_USER, theirRoot])
      await fs.chmod(dir, 0o755)
      const p: [number, number] = [await freePort(), await freePort()]
      const theirs = await startServe(['serve', '--root', theirRoot, '--fullsync-port', String(p[0]), '--delta-port', String(p[1])], OTHER_USER)
      try {
        const ok = await helloOverSsh(sshd, p[0], 'mine.img', {user: OTHER_USER})
        assert.equal(ok?.type, FrameType.HELLO_OK, 'a login as the receiver user gets through')
        const root0 = errorOf(await helloOverSsh(sshd, p[0], 'root.img'))
        assert.equal(root0.code, 'PEER_REFUSED', 'root is not the receiver user')
        assert.match(root0.message, /came from uid 0/)
      } finally {
        await stopServe(theirs)
      }
    })
  })

  it('SIGTERM to the receiver mid-sync: it exits 0, the client fails clearly, the replica resumes later', async () => {
    const ports: [number, number] = [await freePort(), await freePort()]
    const replica = path.join(root, 'term.img')
    // 32 MiB at 2 MB/s: after the first checkpoint past 4 MiB the rest takes well over serve's
    // 5 s grace (with 16 MiB a sync whose acks lagged the data finished inside it, once in CI).
    const disk = await init('term', replica, ports, [], sshd.clientKey.path, 32 * MiB)
    const fh = await fs.open(disk, 'r+')
    await fh.write(seededBytes('term-all', 32 * MiB), 0, 32 * MiB, 0)
    await fh.close()
    const first = await startServe(['serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])])
    // Checkpoints fall at the client's read chunks at the most; 2 MB/s gives many seconds.
    const client = startVdrep(['fullsync', disk, '--bwlimit', '2M', '--compress', 'none', '--checkpoint-bytes', '1M'], {env})
    const result = collect(client)
    await until(async () => ((await readReplicaState(replica).catch(() => ({state: undefined}))).state?.resumeBlock ?? 0) >= 64, 30_000, 'a checkpoint')
    const stopped = await stopServe(first)
    assert.equal(stopped.code, 0, stopped.stderr)
    assert.match(stopped.stderr, /1 session\(s\) cut; their replicas stay incomplete/)
    const r = await result
    assert.equal(r.code, 7, r.stderr)
    assert.match(r.stderr, /the receiver on the replica host is shutting down/)
    const st = (await readReplicaState(replica)).state
    assert.equal(st?.complete, false)
    assert.ok((st?.resumeBlock ?? 0) >= 64)
    const second = await startServe(['serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])])
    try {
      const again = await vdrep(['fullsync', disk], {env})
      assert.equal(again.code, 0, again.stderr)
      assert.match(again.stderr, /resuming at [1-9]\d*%/)
      assert.ok(await cmpEqual(disk, replica))
    } finally {
      assert.equal((await stopServe(second)).code, 0)
    }
  })

  it('auto-starts the receiver over SSH exec when none listens, then works; the daemon stops on SIGTERM', async () => {
    const ports: [number, number] = [await freePort(), await freePort()]
    const cfg = path.join(dir, 'auto-serve.json')
    await fs.writeFile(cfg, JSON.stringify({root, fullsyncPort: ports[0], deltaPort: ports[1], logFile: path.join(dir, 'auto-serve.log')}), {mode: 0o600})
    const disk = await init('auto', path.join(root, 'auto.img'), ports, ['--serve-command', `${process.execPath} ${VDREP_BIN} serve --daemon --config ${cfg}`])
    const r = await vdrep(['fullsync', disk, '-v'], {env})
    assert.equal(r.code, 0, r.stderr)
    if (process.env.VDREP_TEST_DEBUG) console.log(r.stderr)
    assert.match(r.stderr, /nothing listens on 127\.0\.0\.1:\d+ .*starting the receiver with: .*serve --daemon/)
    assert.match(r.stderr, /the receiver answers on 127\.0\.0\.1/)
    assert.ok(await cmpEqual(disk, path.join(root, 'auto.img')))
    const pid = Number(/started in the background: .*pid (\d+)/.exec(r.stderr)?.[1])
    assert.ok(pid > 0, r.stderr)
    // A second run finds it listening and does not start another.
    const again = await vdrep(['fullsync', disk, '-v'], {env})
    assert.equal(again.code, 0, again.stderr)
    assert.doesNotMatch(again.stderr, /starting the receiver/)
    process.kill(pid, 'SIGTERM')
    await until(
      () => {
        try {
          process.kill(pid, 0)
          return false
        } catch {
          return true
        }
      },
      15_000,
      'the daemon to exit',
    )
    assert.match(await fs.readFile(path.join(dir, 'auto-serve.log'), 'utf8'), /SIGTERM: no new connections[\s\S]*stopped/)
  })

  it('works with a key locked down to the two tunnels; auto-start is refused with a clear message', async () => {
    const ports: [number, number] = [await freePort(), await freePort()]
    const key = await makeKeyPair(sshd.dir, 'tunnel_only', 'ed25519')
    const forced = 'echo vdrep: this key only opens tunnels to vdrep serve >&2; exit 1'
    await sshd.authorize(`restrict,port-forwarding,permitopen="127.0.0.1:${ports[0]}",permitopen="127.0.0.1:${ports[1]}",command="${forced}" ${key.pub}`)
    const disk = await init('locked', path.join(root, 'locked.img'), ports, [], key.path)
    // No receiver yet: the exec that would start it is refused by the forced command.
    const r = await vdrep(['fullsync', disk], {env})
    assert.equal(r.code, 7, r.stderr)
    if (process.env.VDREP_TEST_DEBUG) console.log(r.stderr)
    assert.match(
      r.stderr,
      /nothing listens on 127\.0\.0\.1:\d+ .* starting the receiver with 'vdrep serve --daemon' did not help: it exited 1: vdrep: this key only opens tunnels/,
    )
    assert.ok(!(await exists(path.join(root, 'locked.img'))))
    // A pre-started receiver (a systemd unit, say) is reached through the permitted tunnel.
    const serve = await startServe(['serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])])
    try {
      const ok = await vdrep(['fullsync', disk], {env})
      assert.equal(ok.code, 0, ok.stderr)
      assert.ok(await cmpEqual(disk, path.join(root, 'locked.img')))
      // Any other port stays closed to this key.
      const t = await connectSsh(sshOptions(sshd, {identityFiles: [key.path]}))
      await assert.rejects(t.openStream(sshd.port), (e: {code?: string}) => e.code === 'TUNNEL_FAILED')
      await t.close()
    } finally {
      assert.equal((await stopServe(serve)).code, 0)
    }
  })
})
