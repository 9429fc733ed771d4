// Hostile bytes on the REAL sockets of a started `vdrep serve` (both ports), sent by a
// hand-written client over net.connect as the receiver's own uid (so the peer check lets it
// through and the frames reach the protocol): oversized length, bad magic, bad version in
// HELLO, unknown frame type, blocks and zero runs beyond the disk, bundles whose ranges go
// backwards or overlap, forged bundle digests, truncated frames then close, a connection that
// goes silent mid-frame (the idle timeout frees the slot, a slow trickle is not cut), and path
// traversal in the replica name. Each: an ERROR with its code (or a close), the replica
// untouched (its bytes and its state file hashed before and after, no journal left, a delta
// HELLO still trusts it), and the receiver still serving: a real `vdrep fullsync` and `vdrep
// push` over sshd afterwards, then cmp.
import assert from 'node:assert/strict'
import {execFile, type ChildProcess} from 'node:child_process'
import {createHash} from 'node:crypto'
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import {promisify} from 'node:util'
import {blockHasher, HashAlgo} from '../../src/core/hash/block-hash.js'
import {digestData, digestZero} from '../../src/core/protocol/bundle-digest.js'
import {FrameType, MAX_PAYLOAD, PROTOCOL_VERSION} from '../../src/core/protocol/frame.js'
import {FrameReader, type Frame} from '../../src/core/protocol/frame-reader.js'
import {
  decodeBlockStatus,
  decodeError,
  decodeHelloOk,
  decodeVerifyResult,
  encodeBundleBegin,
  encodeBundleEnd,
  encodeDataFields,
  encodeDone,
  encodeHello,
  encodeRange,
  encodeU64,
  ReplicaStateKind,
  SyncMode,
  type ErrorMsg,
  type Hello,
} from '../../src/core/protocol/messages.js'
import {journalPathFor} from '../../src/core/delta/journal.js'
import {readReplicaState, statePathFor, type ReplicaState} from '../../src/core/receiver/replica-state.js'
import {collect, json, startVdrep, vdrep, type CliResult} from '../helpers/cli.js'
import {makeMixedDisk, seededBytes, tempDir} from '../helpers/disks.js'
import {freePort, startSshd, type Sshd} from '../helpers/sshd.js'

const run = promisify(execFile)
const MiB = 1 << 20
const BS = 64 * 1024
const SIZE = 8 * MiB
const BLOCKS = SIZE / BS
const IDLE_S = 2
const U64_MAX = Buffer.alloc(8, 0xff)
const MAX_SAFE = Number.MAX_SAFE_INTEGER

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function header(type: number, length: number, opts: {magic?: number; flags?: number} = {}): Buffer {
  const b = Buffer.alloc(8)
  b.writeUInt16LE(opts.magic ?? 0x4456, 0)
  b.writeUInt8(type, 2)
  b.writeUInt8(opts.flags ?? 0, 3)
  b.writeUInt32LE(length, 4)
  return b
}

function frame(type: number, ...parts: Buffer[]): Buffer {
  const payload = Buffer.concat(parts)
  return Buffer.concat([header(type, payload.length), payload])
}

const hasher = blockHasher(HashAlgo.BLAKE3, Buffer.alloc(16))

/** A DATA frame whose hash is right, so only what the test breaks is wrong. */
function dataFrame(block: number, data = seededBytes(`blk${block}`, BS)): Buffer {
  return frame(FrameType.DATA, encodeDataFields(block, hasher.hash(data)), data)
}

async function sha(file: string): Promise<string> {
  return createHash('sha256')
    .update(await fs.readFile(file))
    .digest('hex')
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  )
}

async function cmpEqual(a: string, b: string): Promise<boolean> {
  return run('cmp', ['-s', a, b]).then(
    () => true,
    () => false,
  )
}

interface Ended {
  types: number[]
  error?: ErrorMsg
  /** the reader's own error (a truncated frame from the receiver would be one) */
  readError?: string
  frames: Frame[]
}

/** A hand-written client on a real socket. */
class Raw {
  readonly reader: FrameReader
  readonly closed: Promise<void>
  private constructor(readonly socket: net.Socket) {
    socket.on('error', () => {})
    this.reader = new FrameReader(socket)
    this.closed = new Promise((r) => socket.once('close', () => r()))
  }

  static connect(port: number): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = net.connect({host: '127.0.0.1', port}, () => resolve(new Raw(s)))
      s.once('error', reject)
    })
  }

  write(...bufs: Buffer[]): Promise<void> {
    return new Promise((resolve) => this.socket.write(Buffer.concat(bufs), () => resolve()))
  }

  async next(): Promise<Frame> {
    const f = await this.reader.next()
    assert.ok(f, 'the receiver ended the stream early')
    if (f.type === FrameType.ERROR) assert.fail(`the receiver refused: ${JSON.stringify(decodeError(f.payload))}`)
    return f
  }

  /** Read until the receiver ends the stream (or `ms` pass): the frames and the ERROR, if any. */
  async drain(ms = 15_000): Promise<Ended & {timedOut: boolean}> {
    const out: Ended & {timedOut: boolean} = {types: [], frames: [], timedOut: false}
    const deadline = sleep(ms).then(() => 'timeout' as const)
    for (;;) {
      const f = await Promise.race([this.reader.next().catch((e: Error) => e), deadline])
      if (f === 'timeout') {
        out.timedOut = true
        break
      }
      if (f instanceof Error) {
        out.readError = f.message
        break
      }
      if (!f) break
      out.types.push(f.type)
      out.frames.push(f)
      if (f.type === FrameType.ERROR) out.error = decodeError(f.payload)
    }
    this.socket.destroy()
    return out
  }
}

describe('hostile bytes on the real sockets of vdrep serve', function () {
  this.timeout(180_000)
  let sshd: Sshd
  let dir: string
  let root: string
  let outside: string
  let ports: [number, number]
  let serve: ChildProcess
  let serveDone: Promise<CliResult>
  let serveLog = ''
  let env: NodeJS.ProcessEnv
  const disks: Record<'main' | 'second', {disk: string; replica: string}> = {} as never

  before(async function () {
    if (process.getuid?.() !== 0) this.skip()
    sshd = await startSshd()
    dir = await tempDir('vdrep-hostile-')
    root = path.join(dir, 'root')
    outside = path.join(dir, 'outside')
    await fs.mkdir(root)
    await fs.mkdir(outside)
    await fs.mkdir(path.join(dir, 'home'))
    env = {HOME: path.join(dir, 'home'), SSH_AUTH_SOCK: ''}
    ports = [await freePort(), await freePort()]
    serve = startVdrep(['serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1]), '--idle-timeout', `${IDLE_S}s`])
    serve.stderr!.on('data', (d: Buffer) => (serveLog += d.toString()))
    serveDone = collect(serve)
    const end = Date.now() + 15_000
    while (!/listening on/.test(serveLog)) {
      if (Date.now() > end || serve.exitCode !== null) throw new Error(`vdrep serve did not start: ${serveLog}`)
      await sleep(25)
    }
    for (const name of ['main', 'second'] as const) {
      const disk = path.join(dir, `${name}.img`)
      const replica = path.join(root, `${name}.img`)
      await makeMixedDisk(disk, SIZE, name, 512 * 1024)
      const init = await vdrep(
        [
          'init',
          disk,
          '--to',
          `${sshd.user}@127.0.0.1:${sshd.port}:${replica}`,
          '--identity',
          sshd.clientKey.path,
          '--known-hosts',
          sshd.knownHostsFile,
          // blake3: the hand-made frames below hash with it (its checksums take no key).
          '--fullsync-port',
          String(ports[0]),
          '--delta-port',
          String(ports[1]),
          '--hash',
          'blake3',
        ],
        {env},
      )
      assert.equal(init.code, 0, init.stderr)
      const r = await vdrep(['fullsync', disk], {env})
      assert.equal(r.code, 0, r.stderr)
      disks[name] = {disk, replica}
    }
  })

  after(async () => {
    if (!serve) return
    serve.kill('SIGTERM')
    const r = await serveDone
    await sshd.stop()
    await fs.rm(dir, {recursive: true, force: true})
    assert.equal(r.code, 0, `vdrep serve exit: ${r.stderr}`)
    assert.doesNotMatch(r.stderr, /uncaught|TypeError|RangeError|ReferenceError/i, 'the receiver never crashed')
  })

  async function stateOf(replica: string): Promise<ReplicaState> {
    const {state} = await readReplicaState(replica)
    assert.ok(state)
    return state
  }

  function helloFor(replica: 'main' | 'second', mode: number, state: ReplicaState, over: Partial<Hello> = {}): Buffer {
    return frame(
      FrameType.HELLO,
      encodeHello({
        version: PROTOCOL_VERSION,
        mode,
        hashAlgo: state.hashAlgo,
        blockSize: state.blockSize,
        diskSize: state.diskSize,
        replicaId: Buffer.from(state.replicaId, 'hex'),
        flags: 0,
        lastCommit: Buffer.alloc(16),
        nextCommit: Buffer.alloc(16, 1),
        path: `${replica}.img`,
        ...over,
      }),
    )
  }

  interface Snapshot {
    bytes: string
    state: string
  }
  async function snapshot(replica: string): Promise<Snapshot> {
    return {bytes: await sha(replica), state: await sha(statePathFor(replica))}
  }

  /** The replica's bytes and state file are as before, no journal is left, and a delta HELLO still trusts it. */
  async function untouched(replica: string, before: Snapshot, what: string): Promise<void> {
    assert.equal(await sha(replica), before.bytes, `${what}: the replica's bytes changed`)
    assert.equal(await sha(statePathFor(replica)), before.state, `${what}: the replica's state file changed`)
    assert.ok(!(await exists(journalPathFor(replica))), `${what}: a journal was left behind`)
    const st = await stateOf(replica)
    // The hostile client saw its connection end a moment before the receiver's session let go
    // of the replica (its release runs after the socket closes): a probe in that moment is told
    // LOCKED. Only that answer is retried, for at most 3 s; any other refusal fails at once.
    let c = await Raw.connect(ports[1])
    let first: Frame | null = null
    for (const until = Date.now() + 3_000; ;) {
      await c.write(helloFor(path.basename(replica, '.img') as 'main', SyncMode.DELTA, st))
      first = await c.reader.next()
      if (!(first?.type === FrameType.ERROR && decodeError(first.payload).code === 'LOCKED' && Date.now() < until)) break
      c.socket.destroy()
      await sleep(50)
      c = await Raw.connect(ports[1])
    }
    assert.ok(first, `${what}: the receiver ended the stream early`)
    if (first.type === FrameType.ERROR) assert.fail(`${what}: the receiver refused: ${JSON.stringify(decodeError(first.payload))}`)
    const ok = decodeHelloOk(first.payload)
    assert.equal(ok.state, ReplicaStateKind.COMPLETE, `${what}: the receiver no longer trusts the replica for a delta`)
    assert.equal(ok.lastSeq, st.lastSeq)
    c.socket.end()
    await c.drain(5_000)
  }

  /** Send the bytes and keep listening: expect an ERROR with `code`, then the receiver hanging up. */
  async function refused(port: number, bytes: Buffer[], code: string | RegExp): Promise<Ended> {
    const c = await Raw.connect(port)
    for (const b of bytes) await c.write(b)
    const r = await c.drain()
    assert.ok(!r.timedOut, `the receiver did not end the connection (frames ${r.types.join(',')})`)
    assert.ok(r.error, `expected ERROR ${code}, got frames [${r.types.join(', ')}]${r.readError ? ` and ${r.readError}` : ''}`)
    if (typeof code === 'string') assert.equal(r.error.code, code, r.error.message)
    else assert.match(r.error.code, code, r.error.message)
    assert.equal(r.types.at(-1), FrameType.ERROR, 'the ERROR is the last frame')
    return r
  }

  /** The receiver serves real clients afterwards: a full sync and a push through sshd, then cmp. */
  async function realClientsStillServed(name: 'main' | 'second'): Promise<void> {
    const {disk, replica} = disks[name]
    const f = await vdrep(['fullsync', disk], {env})
    assert.equal(f.code, 0, f.stderr)
    assert.ok(await cmpEqual(disk, replica))
    const fh = await fs.open(disk, 'r+')
    await fh.write(seededBytes(`change-${Date.now()}`, BS), 0, BS, 3 * BS)
    await fh.close()
    const scan = await vdrep(['track', disk, '--scan'])
    assert.equal(scan.code, 0, scan.stderr)
    const p = await vdrep(['push', disk, '--no-fallback', '--json'], {env})
    assert.equal(p.code, 0, p.stderr)
    assert.equal(json<{mode: string; blocks: number}>(p).blocks, 1)
    assert.ok(await cmpEqual(disk, replica))
  }

  it('frame headers refused before anything is read or allocated, on both ports: oversized length, bad magic, flags, unknown type, an HTTP request', async () => {
    const {replica} = disks.main
    const before = await snapshot(replica)
    const st = await stateOf(replica)
    const hello = helloFor('main', SyncMode.DELTA, st)
    for (const port of ports) {
      await refused(port, [header(FrameType.HELLO, 0xffffffff)], 'FRAME_TOO_LARGE')
      await refused(port, [header(FrameType.DATA, MAX_PAYLOAD + 1)], 'FRAME_TOO_LARGE')
      await refused(port, [header(FrameType.HELLO, 44, {magic: 0x0000}), Buffer.alloc(44)], 'FRAME_BAD_MAGIC')
      await refused(port, [header(FrameType.HELLO, 44, {magic: 0x5644})], 'FRAME_BAD_MAGIC') // byte-swapped
      await refused(port, [header(FrameType.HELLO, hello.length - 8, {flags: 0x80}), hello.subarray(8)], 'FRAME_BAD_FLAGS')
      await refused(port, [header(99, 0)], 'FRAME_UNKNOWN_TYPE')
      await refused(port, [header(0, 0)], 'FRAME_UNKNOWN_TYPE')
      await refused(port, [header(255, 16), Buffer.alloc(16)], 'FRAME_UNKNOWN_TYPE')
      await refused(port, [Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')], 'FRAME_BAD_MAGIC')
      await refused(port, [Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')], 'FRAME_BAD_MAGIC')
      // A first frame that is not a HELLO, and frames only the receiver sends.
      await refused(port, [dataFrame(0)], 'FRAME_UNEXPECTED')
      await refused(port, [frame(FrameType.ERROR, Buffer.alloc(8))], 'FRAME_UNEXPECTED')
      await refused(port, [frame(FrameType.HELLO_OK, Buffer.alloc(51))], 'FRAME_UNEXPECTED')
      await refused(port, [frame(FrameType.KEEPALIVE, Buffer.alloc(0))], 'FRAME_UNEXPECTED')
      // After a good HELLO, an oversized or unknown frame mid-session.
      if (port === ports[1]) {
        await refused(port, [hello, header(FrameType.DATA, 0xfffffff0)], 'FRAME_TOO_LARGE')
        await refused(port, [hello, header(77, 4), Buffer.alloc(4)], 'FRAME_UNKNOWN_TYPE')
        // KEEPALIVE goes from the receiver to the client only.
        await refused(port, [hello, frame(FrameType.KEEPALIVE, Buffer.alloc(0))], 'FRAME_UNEXPECTED')
      }
    }
    await untouched(replica, before, 'bad headers')
    assert.deepEqual(await fs.readdir(outside), [])
  })

  it('HELLOs with a bad version, mode, hash, block size, disk size, flags or a malformed payload are refused and change nothing', async () => {
    const {replica} = disks.main
    const before = await snapshot(replica)
    const st = await stateOf(replica)
    for (const [port, mode] of [
      [ports[0], SyncMode.FULLSYNC],
      [ports[1], SyncMode.DELTA],
    ] as const) {
      for (const version of [0, 1, 3, 0xffff]) await refused(port, [helloFor('main', mode, st, {version})], 'VERSION_MISMATCH')
      await refused(port, [helloFor('main', mode === SyncMode.DELTA ? SyncMode.FULLSYNC : SyncMode.DELTA, st)], 'WRONG_PORT')
      await refused(port, [helloFor('main', 9, st)], 'WRONG_PORT')
      await refused(port, [helloFor('main', mode, st, {hashAlgo: 0})], 'BAD_HASH')
      await refused(port, [helloFor('main', mode, st, {hashAlgo: 200})], 'BAD_HASH')
      for (const blockSize of [0, 3000, 1 << 30]) await refused(port, [helloFor('main', mode, st, {blockSize})], 'BAD_BLOCK_SIZE')
      await refused(port, [helloFor('main', mode, st, {diskSize: 0})], 'BAD_DISK_SIZE')
      await refused(port, [helloFor('main', mode, st, {diskSize: 2 ** 52 + 1})], 'BAD_DISK_SIZE')
      await refused(port, [helloFor('main', mode, st, {flags: 1 << 12})], 'BAD_FLAGS')
      const good = helloFor('main', mode, st).subarray(8)
      await refused(port, [frame(FrameType.HELLO, good.subarray(0, 20))], 'FRAME_MALFORMED') // short
      await refused(port, [frame(FrameType.HELLO, good, Buffer.from([1, 2, 3]))], 'FRAME_MALFORMED') // trailing bytes
      const huge = Buffer.from(good)
      huge.writeUInt16LE(0xffff, 68) // the path's length says more than there is
      await refused(port, [frame(FrameType.HELLO, huge)], 'FRAME_MALFORMED')
      const neg = Buffer.from(good)
      U64_MAX.copy(neg, 8) // disk size 2^64-1: "negative" as a signed number
      await refused(port, [frame(FrameType.HELLO, neg)], 'FRAME_MALFORMED')
    }
    // A HELLO for the replica from another source (another replica id): refused on both ports, nothing is written.
    await refused(ports[1], [helloFor('main', SyncMode.DELTA, st, {replicaId: Buffer.alloc(16, 0xee)})], 'REPLICA_FOREIGN')
    await refused(ports[0], [helloFor('main', SyncMode.FULLSYNC, st, {replicaId: Buffer.alloc(16, 0xee)})], 'REPLICA_FOREIGN')
    await untouched(replica, before, 'bad hellos')
  })

  it('path traversal in the replica name: refused on both ports, nothing created outside the root', async () => {
    const st = await stateOf(disks.main.replica)
    const before = await snapshot(disks.main.replica)
    await fs.symlink(outside, path.join(root, 'link-out'))
    const passwd = await sha('/etc/passwd')
    const names = [
      '../outside/a.img',
      '../../../../../../etc/passwd',
      '/etc/passwd',
      path.join(outside, 'b.img'),
      `${root}/../outside/c.img`,
      'sub/../../outside/d.img',
      '..',
      '.',
      '',
      'x\0../y.img',
      'link-out/e.img',
      path.join(root, 'link-out', 'f.img'),
      `${root}/`,
      '..\\outside\\g.img',
    ]
    for (const [port, mode] of [
      [ports[0], SyncMode.FULLSYNC],
      [ports[1], SyncMode.DELTA],
    ] as const) {
      for (const p of names) await refused(port, [helloFor('main', mode, st, {path: p})], 'PATH_OUTSIDE_ROOT')
    }
    // A final component that is a symlink out, and one that is a directory.
    await fs.symlink(path.join(outside, 'h.img'), path.join(root, 'h.img'))
    await fs.mkdir(path.join(root, 'adir'))
    for (const p of ['h.img', 'adir']) await refused(ports[0], [helloFor('main', SyncMode.FULLSYNC, st, {path: p})], 'PATH_OUTSIDE_ROOT')
    assert.deepEqual(await fs.readdir(outside), [], 'nothing may be written outside the root')
    assert.equal(await sha('/etc/passwd'), passwd)
    await untouched(disks.main.replica, before, 'path traversal')
    await fs.rm(path.join(root, 'h.img'))
    await fs.rm(path.join(root, 'link-out'))
    await fs.rm(path.join(root, 'adir'), {recursive: true})
  })

  describe('bundles on the delta port', () => {
    let st: ReplicaState
    let before: Snapshot
    let hello: Buffer
    const begin = (blockCount: number, over: {seq?: number; diskSize?: number} = {}) =>
      frame(FrameType.BUNDLE_BEGIN, encodeBundleBegin({seq: over.seq ?? st.lastSeq + 1, blockCount, diskSize: over.diskSize ?? st.diskSize}))
    /** A BUNDLE_END whose digest covers exactly these entries (so only the ranges are wrong). */
    const end = (entries: Array<['D', number] | ['Z', number, number]>, over: {blockCount?: number; digest?: Buffer; seq?: number} = {}) => {
      const d = hasher.createStream()
      let n = 0
      for (const e of entries) {
        if (e[0] === 'D') {
          digestData(d, e[1], hasher.hash(seededBytes(`blk${e[1]}`, BS)))
          n++
        } else {
          digestZero(d, e[1], e[2])
          n += e[2]
        }
      }
      return frame(
        FrameType.BUNDLE_END,
        encodeBundleEnd({seq: over.seq ?? st.lastSeq + 1, blockCount: over.blockCount ?? n, digest: over.digest ?? d.digest()}),
      )
    }
    const zero = (start: number, count: number) => frame(FrameType.ZERO_RUN, encodeRange(start, count))

    beforeEach(async () => {
      st = await stateOf(disks.main.replica)
      before = await snapshot(disks.main.replica)
      hello = helloFor('main', SyncMode.DELTA, st)
    })

    /**
     * A new client's delta HELLO answered HELLO_OK (the replica is free again) within `ms`,
     * probing every 50 ms; else the last answer (an ERROR code such as LOCKED, or 'closed').
     */
    async function welcomedWithin(ms: number, helloBytes: () => Promise<Buffer>): Promise<string> {
      const t = Date.now()
      let answer = ''
      while (Date.now() - t < ms) {
        const probe = await Raw.connect(ports[1])
        await probe.write(await helloBytes())
        const f = await probe.reader.next()
        answer = f?.type === FrameType.HELLO_OK ? 'HELLO_OK' : f?.type === FrameType.ERROR ? decodeError(f.payload).code : 'closed'
        probe.socket.destroy()
        if (answer === 'HELLO_OK') break
        await sleep(50)
      }
      return answer
    }

    async function bundleRefused(frames: Buffer[], code: string | RegExp, what: string): Promise<void> {
      const c = await Raw.connect(ports[1])
      await c.write(hello)
      assert.equal((await c.next()).type, FrameType.HELLO_OK)
      for (const f of frames) await c.write(f)
      const r = await c.drain()
      assert.ok(r.error, `${what}: expected ERROR ${code}, got [${r.types.join(', ')}] ${r.readError ?? ''}`)
      if (typeof code === 'string') assert.equal(r.error.code, code, `${what}: ${r.error.message}`)
      else assert.match(r.error.code, code, `${what}: ${r.error.message}`)
      assert.ok(!r.types.includes(FrameType.COMMITTED), `${what}: committed`)
      await untouched(disks.main.replica, before, what)
    }

    it('offsets and lengths beyond the disk: DATA for block >= blockCount, a ZERO_RUN past the end, u64 overflow, wrong lengths', async () => {
      await bundleRefused([begin(1), dataFrame(BLOCKS)], 'BLOCK_OUT_OF_RANGE', 'DATA for block blockCount')
      await bundleRefused([begin(1), dataFrame(MAX_SAFE)], 'BLOCK_OUT_OF_RANGE', 'DATA for block 2^53-1')
      const d = seededBytes('neg', BS)
      await bundleRefused([begin(1), frame(FrameType.DATA, U64_MAX, hasher.hash(d), d)], 'FRAME_MALFORMED', 'DATA for block 2^64-1 (-1)')
      await bundleRefused([begin(10), zero(BLOCKS - 2, 10)], 'BLOCK_OUT_OF_RANGE', 'ZERO_RUN past the end')
      await bundleRefused([begin(1), zero(BLOCKS, 1)], 'BLOCK_OUT_OF_RANGE', 'ZERO_RUN starting at blockCount')
      await bundleRefused([begin(1), zero(MAX_SAFE, MAX_SAFE)], 'BLOCK_OUT_OF_RANGE', 'ZERO_RUN start+count beyond 2^53')
      await bundleRefused([begin(1), frame(FrameType.ZERO_RUN, encodeU64(1), U64_MAX)], 'FRAME_MALFORMED', 'ZERO_RUN count 2^64-1')
      await bundleRefused([begin(1), zero(4, 0)], 'BLOCK_OUT_OF_RANGE', 'ZERO_RUN of no blocks')
      const short = seededBytes('short', BS - 1)
      await bundleRefused([begin(1), frame(FrameType.DATA, encodeDataFields(2, hasher.hash(short)), short)], 'BLOCK_BAD_LENGTH', 'a short block')
      const long = seededBytes('long', BS + 1)
      await bundleRefused([begin(1), frame(FrameType.DATA, encodeDataFields(2, hasher.hash(long)), long)], 'BLOCK_BAD_LENGTH', 'a long block')
      await bundleRefused(
        [begin(1), frame(FrameType.DATA, encodeDataFields(2, Buffer.alloc(32, 7)), d)],
        'BLOCK_BAD_HASH',
        'a block that does not match its hash',
      )
      await bundleRefused([begin(1), frame(FrameType.DATA, Buffer.alloc(20))], 'FRAME_MALFORMED', 'a DATA frame shorter than its fields')
    })

    it('ranges that go backwards or overlap, and bundles that lie about themselves, are refused before anything is applied', async () => {
      await bundleRefused([begin(2), dataFrame(5), dataFrame(3)], 'BLOCK_OUT_OF_RANGE', 'blocks going backwards')
      await bundleRefused([begin(2), dataFrame(5), dataFrame(5)], 'BLOCK_OUT_OF_RANGE', 'the same block twice')
      await bundleRefused([begin(5), dataFrame(5), zero(3, 4)], 'BLOCK_OUT_OF_RANGE', 'a zero run overlapping a data block before it')
      await bundleRefused([begin(5), zero(3, 4), dataFrame(5)], 'BLOCK_OUT_OF_RANGE', 'a data block inside the zero run before it')
      await bundleRefused([begin(8), zero(3, 4), zero(6, 4)], 'BLOCK_OUT_OF_RANGE', 'two overlapping zero runs')
      await bundleRefused([begin(8), zero(10, 4), zero(2, 4)], 'BLOCK_OUT_OF_RANGE', 'zero runs going backwards')
      // Well-formed ranges, but the bundle lies: count, digest, size, sequence.
      await bundleRefused(
        [
          begin(1),
          dataFrame(1),
          dataFrame(2),
          end([
            ['D', 1],
            ['D', 2],
          ]),
        ],
        'BUNDLE_TOO_LARGE',
        'more blocks than announced',
      )
      await bundleRefused(
        [
          begin(2),
          dataFrame(1),
          dataFrame(2),
          end(
            [
              ['D', 1],
              ['D', 2],
            ],
            {blockCount: 3},
          ),
        ],
        'BUNDLE_INCOMPLETE',
        'an end that counts more than was sent',
      )
      await bundleRefused(
        [
          begin(3),
          dataFrame(1),
          dataFrame(2),
          end([
            ['D', 1],
            ['D', 2],
          ]),
        ],
        'BUNDLE_INCOMPLETE',
        'fewer blocks than announced (an end that agrees with what was sent)',
      )
      await bundleRefused(
        [
          begin(2),
          dataFrame(1),
          dataFrame(2),
          end(
            [
              ['D', 1],
              ['D', 2],
            ],
            {seq: st.lastSeq + 2},
          ),
        ],
        'BUNDLE_INCOMPLETE',
        'an end for another sequence than the begin',
      )
      await bundleRefused(
        [
          begin(2),
          dataFrame(1),
          dataFrame(2),
          end(
            [
              ['D', 1],
              ['D', 2],
            ],
            {digest: Buffer.alloc(32, 1)},
          ),
        ],
        'BUNDLE_DIGEST',
        'a forged bundle digest',
      )
      await bundleRefused(
        [
          begin(2),
          dataFrame(1),
          dataFrame(2),
          end([
            ['D', 2],
            ['D', 1],
          ]),
        ],
        'BUNDLE_DIGEST',
        'a digest of the blocks in another order',
      )
      await bundleRefused([begin(BLOCKS + 1)], 'BUNDLE_TOO_LARGE', 'a bundle larger than the disk')
      await bundleRefused([begin(1, {seq: st.lastSeq + 5})], 'SEQUENCE_MISMATCH', 'a sequence from the future')
      await bundleRefused([begin(1, {seq: st.lastSeq})], 'SEQUENCE_MISMATCH', 'a replayed sequence')
      await bundleRefused([begin(1, {diskSize: st.diskSize * 2})], 'DISK_SIZE_MISMATCH', "a disk size other than the hello's")
      await bundleRefused([dataFrame(1)], 'FRAME_UNEXPECTED', 'DATA before BUNDLE_BEGIN')
      await bundleRefused([begin(1), frame(FrameType.CHECKPOINT, encodeU64(1))], 'FRAME_UNEXPECTED', 'a full-sync frame inside a bundle')
      await bundleRefused([begin(1), frame(FrameType.COMMITTED, Buffer.alloc(16))], 'FRAME_UNEXPECTED', 'a receiver frame from the client')
      await bundleRefused([begin(1), header(42, 0)], 'FRAME_UNKNOWN_TYPE', 'an unknown frame type inside a bundle')
    })

    it('a truncated frame then close: the bundle is discarded, nothing applied', async () => {
      const cases: Array<[string, Buffer[]]> = [
        ['inside the hello', [hello.subarray(0, 20)]],
        ['inside a frame header', [hello, begin(2), dataFrame(1), dataFrame(2).subarray(0, 5)]],
        ['inside a DATA payload', [hello, begin(2), dataFrame(1), dataFrame(2).subarray(0, 30_000)]],
        ['between frames, before BUNDLE_END', [hello, begin(2), dataFrame(1), dataFrame(2)]],
        [
          'inside BUNDLE_END',
          [
            hello,
            begin(2),
            dataFrame(1),
            dataFrame(2),
            end([
              ['D', 1],
              ['D', 2],
            ]).subarray(0, 40),
          ],
        ],
      ]
      for (const [what, bytes] of cases) {
        const c = await Raw.connect(ports[1])
        for (const b of bytes) await c.write(b)
        c.socket.end()
        const r = await c.drain()
        assert.ok(!r.timedOut, what)
        assert.ok(!r.types.includes(FrameType.COMMITTED), what)
        // The receiver may still say why (its side of the socket closes with the client's).
        if (r.error) assert.match(r.error.code, /FRAME_TRUNCATED|UNEXPECTED_EOF/, what)
        await untouched(disks.main.replica, before, `truncated ${what}`)
      }
      assert.match(serveLog, /closed inside the hello/)

      // A whole HELLO (or more) and the close in one packet: the receiver must see the close
      // and free the replica at once, not hold it until the idle timeout.
      for (const bytes of [hello, Buffer.concat([hello, begin(2), dataFrame(1)])]) {
        for (let i = 0; i < 3; i++) {
          const c = await Raw.connect(ports[1])
          c.socket.end(bytes)
          await c.drain()
          const t = Date.now()
          const answer = await welcomedWithin((IDLE_S * 1000) / 2, async () => hello)
          assert.equal(
            answer,
            'HELLO_OK',
            `a client that closed right after its ${bytes.length === hello.length ? 'hello' : 'first frames'} still holds the replica (${answer}) ${Date.now() - t} ms later`,
          )
          await untouched(disks.main.replica, before, 'a hello then close')
        }
      }
    })

    it('a whole bundle, then the client gone before the answer: committed or not, the receiver lets go with no journal left', async () => {
      // The receiver applies and commits a sealed bundle whether or not the client is still
      // there to hear COMMITTED; a failed answer must not skip the journal's removal.
      for (let i = 0; i < 3; i++) {
        st = await stateOf(disks.main.replica)
        hello = helloFor('main', SyncMode.DELTA, st)
        const c = await Raw.connect(ports[1])
        await c.write(hello)
        assert.equal((await c.next()).type, FrameType.HELLO_OK)
        await c.write(
          begin(2),
          dataFrame(1),
          dataFrame(2),
          end([
            ['D', 1],
            ['D', 2],
          ]),
        )
        // A reset, as from a killed client: the receiver's socket is gone while it applies.
        c.socket.resetAndDestroy()
        // Let go: a new client is welcome (HELLO_OK, not LOCKED) within the idle timeout.
        const t = Date.now()
        const answer = await welcomedWithin(IDLE_S * 1000, async () => helloFor('main', SyncMode.DELTA, await stateOf(disks.main.replica)))
        assert.equal(answer, 'HELLO_OK', `round ${i}: the receiver still holds the replica (${answer}) ${Date.now() - t} ms after the client went`)
        assert.ok(!(await exists(journalPathFor(disks.main.replica))), `round ${i}: a journal was left behind by a session that ended`)
        const now = await stateOf(disks.main.replica)
        assert.ok(now.lastSeq === st.lastSeq || now.lastSeq === st.lastSeq + 1, `round ${i}: sequence ${now.lastSeq} after ${st.lastSeq}`)
      }
    })

    it('a client that goes silent mid-frame holds the replica only until the idle timeout; a slow trickle is not cut', async () => {
      // Silent inside a DATA frame: the slot is held (a real push is refused, LOCKED)...
      const c = await Raw.connect(ports[1])
      await c.write(hello)
      assert.equal((await c.next()).type, FrameType.HELLO_OK)
      await c.write(begin(2), dataFrame(1), dataFrame(2).subarray(0, 1000))
      const t0 = Date.now()
      const {disk, replica} = disks.main
      const locked = await vdrep(['push', disk, '--no-fallback'], {env})
      assert.equal(locked.code, 3, `a second client for the same replica is refused while the first holds it: ${locked.stderr}`)
      assert.match(locked.stderr, /another client is writing/)
      // ...until the idle timeout frees it, with an ERROR that says why.
      const r = await c.drain(IDLE_S * 1000 + 10_000)
      assert.ok(!r.timedOut, 'the idle client was not dropped')
      assert.equal(r.error?.code, 'IDLE_TIMEOUT')
      assert.ok(Date.now() - t0 >= IDLE_S * 1000 - 200, 'dropped before the idle timeout')
      await untouched(replica, before, 'a silent client')
      await realClientsStillServed('main')

      // Silent before any byte, and silent inside the hello (peeked before the session starts):
      // both wait out their idle timeout at once, while the slow link below trickles on the other port.
      const silent = Promise.all(
        [Buffer.alloc(0), hello.subarray(0, 30)].map(async (bytes) => {
          const s = await Raw.connect(ports[0])
          if (bytes.length) await s.write(bytes)
          const t = Date.now()
          const e = await s.drain(IDLE_S * 1000 + 10_000)
          assert.ok(!e.timedOut, 'a silent connection is closed')
          assert.ok(Date.now() - t >= IDLE_S * 1000 - 200)
        }),
      )
      silent.catch(() => {}) // awaited below; not unhandled meanwhile

      // A slow link: the hello, the bundle begin and a DATA frame trickle in, each gap shorter
      // than the idle timeout but the whole far longer. Nothing is cut; the (hostile) block is
      // refused for what it is, not for being slow.
      st = await stateOf(replica)
      before = await snapshot(replica)
      hello = helloFor('main', SyncMode.DELTA, st)
      const slow = await Raw.connect(ports[1])
      const gap = IDLE_S * 1000 * 0.6
      const trickle = async (b: Buffer, pieces: number) => {
        for (let i = 0; i < pieces; i++) {
          await slow.write(b.subarray(Math.floor((i * b.length) / pieces), Math.floor(((i + 1) * b.length) / pieces)))
          await sleep(gap)
        }
      }
      const ts = Date.now()
      await trickle(hello, 3)
      assert.equal((await slow.next()).type, FrameType.HELLO_OK)
      await trickle(begin(1), 2)
      await trickle(dataFrame(BLOCKS + 3), 3)
      const sr = await slow.drain()
      assert.ok(Date.now() - ts > 3 * IDLE_S * 1000, 'the trickle outlasted several idle timeouts')
      assert.equal(sr.error?.code, 'BLOCK_OUT_OF_RANGE', 'the slow client was judged on its frames, not cut')
      await untouched(replica, before, 'a slow client')
      await silent
    })

    afterEach(async function () {
      if (this.currentTest?.state === 'passed') await realClientsStillServed('main')
    })
  })

  describe('full-sync port, after a good HELLO', () => {
    /** Hello, then read every BLOCK_STATUS (so out-of-range checks are not "not scanned yet"). */
    async function started(): Promise<Raw> {
      const st = await stateOf(disks.second.replica)
      const c = await Raw.connect(ports[0])
      await c.write(helloFor('second', SyncMode.FULLSYNC, st))
      assert.equal((await c.next()).type, FrameType.HELLO_OK)
      let seen = 0
      while (seen < BLOCKS) {
        const f = await c.next()
        assert.equal(f.type, FrameType.BLOCK_STATUS)
        seen += decodeBlockStatus(f.payload).kinds.length
      }
      return c
    }

    it('blocks, zero runs and checkpoints beyond the disk, bad hashes and lengths, bundle frames, a wrong DONE: refused, no byte of the replica written', async () => {
      const {replica} = disks.second
      const bytes = await sha(replica)
      const d = seededBytes('fs', BS)
      const cases: Array<[string, Buffer[], string | RegExp]> = [
        ['DATA for block blockCount', [dataFrame(BLOCKS)], 'BLOCK_OUT_OF_RANGE'],
        ['DATA for block 2^53-1', [dataFrame(MAX_SAFE)], 'BLOCK_OUT_OF_RANGE'],
        ['DATA for block 2^64-1', [frame(FrameType.DATA, U64_MAX, hasher.hash(d), d)], 'FRAME_MALFORMED'],
        ['ZERO_RUN past the end', [zeroRun(BLOCKS - 1, 2)], 'BLOCK_OUT_OF_RANGE'],
        ['ZERO_RUN overflowing', [zeroRun(MAX_SAFE, MAX_SAFE)], 'BLOCK_OUT_OF_RANGE'],
        ['ZERO_RUN of no blocks', [zeroRun(2, 0)], 'ZERO_RUN_EMPTY'],
        ['CHECKPOINT beyond the disk', [frame(FrameType.CHECKPOINT, encodeU64(BLOCKS + 1))], 'CHECKPOINT_OUT_OF_RANGE'],
        ['a block behind the checkpoint', [frame(FrameType.CHECKPOINT, encodeU64(4)), dataFrame(2)], 'BLOCK_BEHIND_CHECKPOINT'],
        ['a bad hash', [frame(FrameType.DATA, encodeDataFields(2, Buffer.alloc(32, 3)), d)], 'BLOCK_BAD_HASH'],
        ['a short block', [frame(FrameType.DATA, encodeDataFields(2, hasher.hash(d.subarray(1))), d.subarray(1))], 'BLOCK_BAD_LENGTH'],
        [
          'a bundle frame on the full-sync port',
          [frame(FrameType.BUNDLE_BEGIN, encodeBundleBegin({seq: 1, blockCount: 1, diskSize: SIZE}))],
          'FRAME_UNEXPECTED',
        ],
        [
          'a second HELLO',
          [helloFor('second', SyncMode.FULLSYNC, {hashAlgo: 2, blockSize: BS, diskSize: SIZE, replicaId: '00'.repeat(16)} as ReplicaState)],
          'FRAME_UNEXPECTED',
        ],
        ['DONE for another block count', [frame(FrameType.DONE, encodeDone({blockCount: BLOCKS + 1, digest: Buffer.alloc(32)}))], 'DONE_MISMATCH'],
        ['an unknown frame type', [header(200, 0)], 'FRAME_UNKNOWN_TYPE'],
        ['an oversized frame', [header(FrameType.DATA, 0x7fffffff)], 'FRAME_TOO_LARGE'],
      ]
      for (const [what, frames, code] of cases) {
        const c = await started()
        for (const f of frames) await c.write(f)
        const r = await c.drain()
        assert.equal(r.error?.code, code, `${what}: ${r.error?.message ?? r.types.join(',')}`)
        assert.equal(await sha(replica), bytes, `${what}: the replica's bytes changed`)
        assert.equal((await stateOf(replica)).complete, false, `${what}: a full sync began, so the replica stays marked incomplete until one is proved`)
      }
      // A DONE with a forged digest: not an error, a failed proof; the replica is never marked complete.
      const c = await started()
      await c.write(frame(FrameType.DONE, encodeDone({blockCount: BLOCKS, digest: Buffer.alloc(32, 9)})))
      const r = await c.drain()
      const verdict = r.frames.find((f) => f.type === FrameType.VERIFY_RESULT)
      assert.ok(verdict, `a VERIFY_RESULT: ${r.types.join(',')}`)
      assert.equal(decodeVerifyResult(verdict.payload).ok, false)
      assert.equal((await stateOf(replica)).complete, false)
      // Truncated then close, and silent mid-frame.
      for (const tail of [dataFrame(1).subarray(0, 3), dataFrame(1).subarray(0, 9000)]) {
        const t = await started()
        await t.write(tail)
        t.socket.end()
        const e = await t.drain()
        assert.ok(!e.timedOut)
        if (e.error) assert.match(e.error.code, /FRAME_TRUNCATED|UNEXPECTED_EOF/)
      }
      const silent = await started()
      await silent.write(dataFrame(1).subarray(0, 100))
      const e = await silent.drain(IDLE_S * 1000 + 10_000)
      assert.equal(e.error?.code, 'IDLE_TIMEOUT')
      assert.equal(await sha(replica), bytes)
      // The next real full sync repairs the mark (it compares, sends nothing) and ends equal.
      await realClientsStillServed('second')
    })

    function zeroRun(start: number, count: number): Buffer {
      return frame(FrameType.ZERO_RUN, encodeRange(start, count))
    }
  })
})
