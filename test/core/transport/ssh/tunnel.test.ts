// Tunnels and exec through a real sshd: round trips to a TCP echo server, throughput per
// cipher, a cut connection, and closing with tunnels open.

import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {once} from 'node:events'
import {createServer, type Server, type Socket} from 'node:net'
import type {Duplex} from 'node:stream'
import {finished} from 'node:stream/promises'
import {TransportError} from '../../../../src/core/errors.js'
import {connectSsh, type SshTransport} from '../../../../src/core/transport/ssh/ssh-transport.js'
import {encodeFrameHeader, FRAME_HEADER_SIZE, FrameType} from '../../../../src/core/protocol/frame.js'
import {FrameWriter} from '../../../../src/core/protocol/frame-writer.js'
import {BufferPool} from '../../../../src/core/util/buffer-pool.js'
import {freePort, sshOptions, startSshd, type Sshd} from '../../../helpers/sshd.js'

const MiB = 1 << 20

async function listen(onConn: (s: Socket) => void): Promise<{server: Server; port: number; sockets: Set<Socket>}> {
  const sockets = new Set<Socket>()
  const server = createServer((s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    onConn(s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {server, port: (server.address() as {port: number}).port, sockets}
}

/** Sends `total` bytes and reads them back; resolves with the seconds it took. */
async function roundTrip(stream: Duplex, total: number, onProgress?: (received: number) => void): Promise<number> {
  const chunk = randomBytes(MiB)
  const sentHash = createHash('sha256')
  const gotHash = createHash('sha256')
  const start = process.hrtime.bigint()
  let received = 0
  const reader = new Promise<void>((resolve, reject) => {
    stream.on('data', (d: Buffer) => {
      gotHash.update(d)
      received += d.length
      onProgress?.(received)
      if (received >= total) resolve()
    })
    stream.once('error', reject)
    stream.once('end', () => reject(new Error(`stream ended after ${received} of ${total} bytes`)))
  })
  const writer = (async () => {
    for (let sent = 0; sent < total && !stream.destroyed; sent += chunk.length) {
      sentHash.update(chunk)
      if (!stream.write(chunk)) await once(stream, 'drain')
    }
  })()
  await Promise.all([writer, reader])
  assert.equal(gotHash.digest('hex'), sentHash.digest('hex'))
  return Number(process.hrtime.bigint() - start) / 1e9
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms (hang)`)), ms)
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

describe('ssh tunnels (real sshd)', function () {
  this.timeout(60_000)
  let sshd: Sshd
  let echo: Awaited<ReturnType<typeof listen>>
  let t: SshTransport

  before(async () => {
    sshd = await startSshd()
    echo = await listen((s) => s.pipe(s))
    t = await connectSsh(sshOptions(sshd))
  })
  after(async () => {
    await t?.close()
    echo?.server.close()
    for (const s of echo?.sockets ?? []) s.destroy()
    await sshd?.stop()
  })

  it('round-trips bytes through openStream and ends cleanly', async () => {
    const s = await t.openStream(echo.port)
    s.write('hello through the tunnel')
    const [data] = (await once(s, 'data')) as [Buffer]
    assert.equal(data.toString(), 'hello through the tunnel')
    s.end()
    await once(s, 'end')
  })

  it('sees the end when the far side closes the connection', async () => {
    const greeter = await listen((sock) => sock.end('bye'))
    try {
      const s = await t.openStream(greeter.port)
      const chunks: Buffer[] = []
      s.on('data', (d: Buffer) => chunks.push(d))
      await once(s, 'end')
      assert.equal(Buffer.concat(chunks).toString(), 'bye')
      s.destroy()
    } finally {
      greeter.server.close()
    }
  })

  it('fails a writer, without hanging, when the far side closes while data is still sent', async () => {
    const refuser = await listen((sock) => sock.once('data', () => sock.destroy()))
    try {
      const s = await t.openStream(refuser.port)
      s.resume()
      const chunk = Buffer.alloc(MiB)
      const pump = (async () => {
        for (let i = 0; i < 1024; i++) if (!s.write(chunk)) await once(s, 'drain')
      })()
      await withTimeout(
        assert.rejects(pump, (e: unknown) => e instanceof TransportError && e.code === 'SSH_CHANNEL_CLOSED'),
        20_000,
        'writer after the far side closed',
      )
    } finally {
      refuser.server.close()
    }
  })

  it('says when nothing listens on the port', async () => {
    const port = await freePort()
    await assert.rejects(
      t.openStream(port),
      (err: unknown) => err instanceof TransportError && err.code === 'TUNNEL_REFUSED' && err.message.includes(`127.0.0.1:${port}`),
    )
  })

  it('runs commands with exec', async () => {
    assert.deepEqual(await t.exec('echo hi'), {code: 0, stdout: 'hi\n', stderr: ''})
    assert.deepEqual(await t.exec('echo oops >&2; exit 3'), {code: 3, stdout: '', stderr: 'oops\n'})
    assert.equal((await t.exec('cat')).code, 0, 'stdin is closed, so cat returns')
  })

  it('lets a writer reuse a lent buffer once the stream has taken it (frames gathered, 16 MiB)', async () => {
    // The push sender reads blocks into pooled buffers and reuses one as soon as FrameWriter
    // reports its frame taken. If the tunnel still referenced the bytes then (a gathered
    // write kept as references, not copied), the far side would get the next block's bytes.
    const s = await t.openStream(echo.port)
    const writer = new FrameWriter(s)
    const pool = new BufferPool(4 * 64 * 1024, 64 * 1024)
    const frames = 256
    const sentHash = createHash('sha256')
    const gotHash = createHash('sha256')
    let received = 0
    const total = frames * (FRAME_HEADER_SIZE + 8 + 64 * 1024)
    const got = new Promise<void>((resolve, reject) => {
      s.on('data', (d: Buffer) => {
        gotHash.update(d)
        received += d.length
        if (received >= total) resolve()
      })
      s.once('error', reject)
    })
    for (let i = 0; i < frames; i++) {
      const buf = pool.take(64 * 1024)
      randomBytes(buf.length).copy(buf)
      const fields = Buffer.alloc(8)
      fields.writeUInt32BE(i)
      sentHash
        .update(encodeFrameHeader(FrameType.DATA, 8 + buf.length))
        .update(fields)
        .update(buf)
      await writer.sendLent(FrameType.DATA, fields, buf, () => {
        buf.fill(0xee) // what a reused buffer would hold next
        pool.give(buf)
      })
    }
    await withTimeout(got, 30_000, 'echo of 16 MiB')
    assert.equal(gotHash.digest('hex'), sentHash.digest('hex'))
    s.end()
  })

  it('hands the packets of frames written together to the socket in gathered writes, not one per packet', async () => {
    const s = await t.openStream(echo.port)
    const sock = (t as unknown as {client: {_sock: Socket & {_writev: unknown; _write: unknown}}}).client._sock
    let calls = 0
    const wrap = <F extends (...a: never[]) => unknown>(f: F) => ((...a: Parameters<F>) => (calls++, f.apply(sock, a))) as F
    const [w, wv] = [sock._write as (...a: never[]) => unknown, sock._writev as (...a: never[]) => unknown]
    sock._write = wrap(w)
    sock._writev = wrap(wv)
    try {
      const writer = new FrameWriter(s)
      const body = randomBytes(64 * 1024)
      // Four 64 KiB frames are at least eight ssh packets (32 KiB each at most).
      for (let i = 0; i < 4; i++) void writer.send(FrameType.DATA, Buffer.alloc(8), body)
      await new Promise((r) => setImmediate(r))
      // The first frame leaves at the end of its tick; the three queued behind it go together
      // once the tunnel takes them (the stream calls back on the next tick): two writes, where
      // ssh2 alone makes one per packet (eight or more).
      assert.ok(calls >= 1 && calls <= 2, `the socket got ${calls} writes for 4 frames written in one tick`)
    } finally {
      sock._write = w
      sock._writev = wv
      s.destroy()
    }
  })

  for (const cipher of ['aes128-gcm@openssh.com', 'chacha20-poly1305@openssh.com']) {
    it(`moves 64 MiB both ways intact with ${cipher}`, async () => {
      const tc = await connectSsh(sshOptions(sshd, {ciphers: [cipher]}))
      try {
        assert.equal(tc.cipher, cipher)
        const s = await tc.openStream(echo.port)
        const secs = await roundTrip(s, 64 * MiB)
        console.log(`      ${cipher}: 64 MiB round trip in ${secs.toFixed(2)} s, ${(64 / secs).toFixed(0)} MiB/s each way`)
        s.end()
      } finally {
        await tc.close()
      }
    })
  }

  it('fails open streams, the pump and later calls with a TransportError when the connection is cut', async () => {
    const tc = await connectSsh(sshOptions(sshd))
    const s = await tc.openStream(echo.port)
    let killed: Promise<number> | undefined
    const pump = roundTrip(s, 1024 * MiB, (received) => {
      if (received > 4 * MiB && !killed) killed = sshd.killSessions()
    })
    const err = await withTimeout(
      pump.then(
        () => undefined,
        (e: unknown) => e,
      ),
      20_000,
      'pump after the cut',
    )
    assert.ok((await killed!) > 0, 'session processes were killed')
    assert.ok(err instanceof TransportError, `expected TransportError, got ${String(err)}`)
    assert.equal(err.code, 'SSH_CONNECTION_LOST')
    assert.match(err.message, /ssh connection to .* was cut/)
    assert.equal(s.destroyed, true)
    await assert.rejects(tc.openStream(echo.port), (e: unknown) => e === err)
    await assert.rejects(tc.exec('true'), (e: unknown) => e === err)
    await withTimeout(tc.close(), 10_000, 'close after the cut')
  })

  it('fails an exec that is running when the connection is cut', async () => {
    const tc = await connectSsh(sshOptions(sshd))
    const running = tc.exec('sleep 30')
    await new Promise((r) => setTimeout(r, 1500))
    await sshd.killSessions()
    await withTimeout(
      assert.rejects(running, (e: unknown) => e instanceof TransportError && e.code === 'SSH_CONNECTION_LOST'),
      20_000,
      'exec after the cut',
    )
    await tc.close()
  })

  it('ends open tunnels without an error event when the transport is closed', async () => {
    const tc = await connectSsh(sshOptions(sshd))
    const s = await tc.openStream(echo.port)
    const errors: unknown[] = []
    s.on('error', (e) => errors.push(e))
    const closed = once(s, 'close')
    await withTimeout(tc.close(), 10_000, 'close')
    await closed
    assert.equal(s.destroyed, true)
    assert.deepEqual(errors, [])
    await assert.rejects(finished(s), /premature close/i)
    await assert.rejects(tc.openStream(echo.port), (x: unknown) => x instanceof TransportError && x.code === 'SSH_CLOSED')
    await assert.rejects(tc.exec('true'), (x: unknown) => x instanceof TransportError && x.code === 'SSH_CLOSED')
    await tc.close()
  })

  // What the login does; how long it takes (each step that waited for a delayed ACK was 40 ms
  // of a push) is bench/login-bench.ts.
  describe('login trace', () => {
    /** One login + tunnel + one-frame round trip, with ssh2's packet trace timed. */
    async function timedLogin(): Promise<{lines: Array<{ms: number; line: string}>; gap: (from: RegExp, to: RegExp) => number}> {
      const lines: Array<{ms: number; line: string}> = []
      const tc = await connectSsh(sshOptions(sshd, {debug: (line) => lines.push({ms: performance.now(), line})}))
      try {
        const s = await tc.openStream(echo.port)
        s.write(Buffer.alloc(100, 1))
        await once(s, 'data')
        s.destroy()
      } finally {
        await tc.close()
      }
      const at = (re: RegExp) => {
        const hit = lines.find((l) => re.test(l.line))
        assert.ok(hit, `no ${re} in the ssh2 trace:\n${lines.map((l) => l.line).join('\n')}`)
        return hit.ms
      }
      return {lines, gap: (from, to) => at(to) - at(from)}
    }

    it('answers the host-key announcement with an IGNORE, not a proof request', async () => {
      const {lines} = await timedLogin()
      const text = lines.map((l) => l.line).join('\n')
      assert.match(text, /GLOBAL_REQUEST \(hostkeys-00@openssh\.com\)/, 'sshd did not announce its host keys: the test proves nothing')
      assert.doesNotMatch(text, /hostkeys-prove/)
    })

    // How long each step takes (no 40 ms delayed-ACK stall) is measured by the bench
    // (`npm run bench -- --only login`), not asserted here: a loaded machine is not a bug.
    it('logs in, opens a tunnel and gets the first answer, each step in order', async () => {
      const {lines, gap} = await timedLogin()
      assert.ok(gap(/Sending SERVICE_REQUEST/, /Received SERVICE_ACCEPT/) >= 0)
      assert.ok(gap(/Received SERVICE_ACCEPT/, /Sending CHANNEL_OPEN/) >= 0)
      assert.ok(gap(/Sending CHANNEL_OPEN/, /CHANNEL_OPEN_CONFIRMATION/) >= 0)
      assert.ok(gap(/CHANNEL_OPEN_CONFIRMATION/, /Sending CHANNEL_DATA \(r:\d+, 100\)/) >= 0)
      assert.ok(gap(/Sending CHANNEL_DATA \(r:\d+, 100\)/, /Inbound: CHANNEL_DATA \(r:\d+, 100\)/) >= 0)
      assert.ok(lines.length > 0)
    })
  })
})
