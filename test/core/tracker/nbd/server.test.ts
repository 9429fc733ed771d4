// Listening, shutdown and several clients at once.

import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {UsageError} from '../../../../src/core/errors.js'
import {isLoopback, NbdServer, parseListenSpec} from '../../../../src/core/tracker/nbd/server.js'
import {MemoryBackend, RawClient, requestHex, startServer, tempDir} from './harness.js'

describe('nbd server: listen addresses', () => {
  it('parses unix:PATH, HOST:PORT and [IPV6]:PORT', () => {
    assert.deepEqual(parseListenSpec('unix:/run/vdrep/a.sock'), {kind: 'unix', path: '/run/vdrep/a.sock'})
    assert.deepEqual(parseListenSpec('127.0.0.1:10809'), {kind: 'tcp', host: '127.0.0.1', port: 10809})
    assert.deepEqual(parseListenSpec('localhost:0'), {kind: 'tcp', host: 'localhost', port: 0})
    assert.deepEqual(parseListenSpec('[::1]:10809'), {kind: 'tcp', host: '::1', port: 10809})
  })

  for (const bad of ['', 'unix:', '10809', 'host:', 'host:port', 'host:70000', '::1:10809', `unix:/${'x'.repeat(200)}`]) {
    it(`refuses "${bad.slice(0, 30)}" as a usage error`, () => {
      assert.throws(
        () => parseListenSpec(bad),
        (e: unknown) => e instanceof UsageError && e.code === 'NBD_LISTEN',
      )
    })
  }

  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) assert.equal(isLoopback(h), true, h)
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', 'example.org']) assert.equal(isLoopback(h), false, h)
  })

  it('refuses a non-loopback TCP address unless listenAny', async () => {
    const server = new NbdServer(new MemoryBackend(4096))
    await assert.rejects(server.listen('0.0.0.0:0'), (e: unknown) => e instanceof UsageError && e.code === 'NBD_NOT_LOOPBACK')
    const any = new NbdServer(new MemoryBackend(4096), {listenAny: true})
    const a = await any.listen('0.0.0.0:0')
    assert.ok(a.kind === 'tcp' && a.port > 0)
    await any.close()
  })
})

describe('nbd server: lifecycle', () => {
  let dir: string
  let cleanup: () => Promise<void>

  beforeEach(async () => ({dir, cleanup} = await tempDir()))
  afterEach(async () => cleanup())

  it('reports the real port for port 0 and removes its unix socket on close', async () => {
    const s = await startServer(new MemoryBackend(4096), dir)
    assert.ok(s.port > 0)
    assert.deepEqual(s.server.address, {kind: 'unix', path: s.sock})
    assert.equal(s.server.addresses[1].kind, 'tcp')
    await s.server.close()
    assert.equal(existsSync(s.sock), false)
    await assert.rejects(s.server.listen('127.0.0.1:0'), {code: 'NBD_CLOSED'})
  })

  it('replaces a stale unix socket but refuses one a live process listens on', async () => {
    const sock = path.join(dir, 'x.sock')
    const other = net.createServer()
    await new Promise<void>((r) => other.listen(sock, r))
    const s = new NbdServer(new MemoryBackend(4096))
    await assert.rejects(s.listen(`unix:${sock}`), {code: 'NBD_SOCKET_IN_USE'})
    await new Promise<void>((r) => other.close(() => r()))
    // A killed process leaves its socket file behind.
    const code = `require('net').createServer().listen(${JSON.stringify(path.join(dir, 'y.sock'))}, () => process.kill(process.pid, 'SIGKILL'))`
    spawnSync(process.execPath, ['-e', code])
    assert.equal(existsSync(path.join(dir, 'y.sock')), true)
    await s.listen(`unix:${path.join(dir, 'y.sock')}`)
    const c = await RawClient.connect({path: path.join(dir, 'y.sock')})
    assert.equal((await c.read(8)).toString(), 'NBDMAGIC')
    c.socket.destroy()
    await s.close()
  })

  it('close() lets an in-flight write finish and answer, then closes every client', async () => {
    const backend = new MemoryBackend(65536)
    backend.delay = (kind) => (kind === 'write' ? 300 : 0)
    const s = await startServer(backend, dir)
    const busy = await RawClient.connect({path: s.sock})
    await busy.go('disk.img')
    const idle = await RawClient.connect({port: s.port})
    await idle.go('')
    const negotiating = await RawClient.connect({path: s.sock})
    await negotiating.read(18)
    busy.send(requestHex(1, 77, 0, 4) + 'abcdef01')
    await new Promise((r) => setTimeout(r, 50))
    const t0 = Date.now()
    await s.server.close()
    assert.ok(Date.now() - t0 >= 200, 'close() waited for the write')
    assert.equal((await busy.read(16)).toString('hex'), '67446698' + '00000000' + '000000000000004d')
    assert.equal(backend.data.toString('hex', 0, 4), 'abcdef01')
    for (const c of [busy, idle, negotiating]) assert.equal(await c.closesWithin(1000), true)
    assert.equal(s.logs.length, 3)
    assert.equal(s.logs.filter((l) => /server shut down/.test(l)).length, 3)
  })

  it("serves two raw clients at once, on unix and TCP, each seeing the other's writes", async () => {
    const backend = new MemoryBackend(65536)
    const s = await startServer(backend, dir)
    const a = await RawClient.connect({path: s.sock})
    const b = await RawClient.connect({port: s.port})
    await Promise.all([a.go('disk.img'), b.go('disk.img')])
    a.send(requestHex(1, 1, 0, 4) + '11111111')
    b.send(requestHex(1, 2, 4, 4) + '22222222')
    assert.equal((await a.read(16)).readUInt32BE(4), 0)
    assert.equal((await b.read(16)).readUInt32BE(4), 0)
    a.send(requestHex(0, 3, 0, 8))
    await a.read(16)
    assert.equal(await a.readHex(8), '1111111122222222')
    assert.equal(s.server.connectionCount, 2)
    a.socket.destroy()
    b.socket.destroy()
    await s.server.close()
    assert.match(s.logs.join('\n'), /tcp#\d+ 127\.0\.0\.1:\d+/)
  })

  it('holds at most 64 MiB of READ/WRITE payload per connection in flight', async () => {
    const backend = new MemoryBackend(4096)
    let now = 0
    let peak = 0
    const big = Object.assign(Object.create(backend) as MemoryBackend, {
      size: 1024 * 1024 * 1024,
      async read(_offset: number, length: number): Promise<Buffer> {
        peak = Math.max(peak, ++now)
        await new Promise((r) => setTimeout(r, 100))
        now--
        return Buffer.alloc(length)
      },
    })
    const s = await startServer(big, dir)
    const c = await RawClient.connect({path: s.sock})
    await c.go('disk.img')
    const MiB32 = 32 * 1024 * 1024
    for (let i = 0; i < 4; i++) c.send(requestHex(0, i, i * MiB32, MiB32))
    await new Promise((r) => setTimeout(r, 450))
    assert.equal(peak, 2)
    c.socket.destroy()
    await s.server.close()
  })

  it('a read-only server advertises READ_ONLY and refuses writes with EPERM', async () => {
    const s = await startServer(new MemoryBackend(4096), dir, {readOnly: true})
    const c = await RawClient.connect({path: s.sock})
    await c.read(18)
    c.send('00000003')
    c.send('49484156454f5054' + '00000001' + '00000000')
    assert.equal(await c.readHex(10), '0000000000001000' + '016f')
    c.send(requestHex(1, 1, 0, 2) + 'ffff')
    assert.equal((await c.read(16)).readUInt32BE(4), 1)
    c.socket.destroy()
    await s.server.close()
  })
})
