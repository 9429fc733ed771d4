// Transmission phase over a raw socket against an in-memory export: hostile requests,
// error replies that keep the connection usable, out-of-order replies, write ordering.

import assert from 'node:assert/strict'
import {MemoryBackend, RawClient, requestHex, startServer, tempDir, type Started} from './harness.js'

const SIZE = 1024 * 1024
const READ = 0
const WRITE = 1
const DISC = 2
const BLOCK_STATUS = 7
const handleHex = (h: number): string => h.toString(16).padStart(16, '0')

describe('nbd requests (raw socket)', () => {
  let s: Started
  let backend: MemoryBackend
  let cleanup: () => Promise<void>
  const clients: RawClient[] = []

  beforeEach(async () => {
    const t = await tempDir()
    cleanup = t.cleanup
    backend = new MemoryBackend(SIZE)
    s = await startServer(backend, t.dir)
  })

  afterEach(async () => {
    for (const c of clients.splice(0)) c.socket.destroy()
    await s.server.close()
    await cleanup()
  })

  async function client(opts: {structured?: boolean; meta?: boolean} = {}): Promise<RawClient> {
    const c = await RawClient.connect({path: s.sock})
    clients.push(c)
    await c.go('disk.img', opts)
    return c
  }

  /** A simple reply: [error, handle hex]. */
  async function simple(c: RawClient): Promise<[number, string]> {
    const b = await c.read(16)
    assert.equal(b.readUInt32BE(0), 0x67446698)
    return [b.readUInt32BE(4), b.subarray(8, 16).toString('hex')]
  }

  it('answers a READ past the end with EINVAL and no payload, and keeps serving', async () => {
    backend.data.write('abcd', 0)
    const c = await client()
    c.send(requestHex(READ, 1, SIZE - 2, 4))
    assert.deepEqual(await simple(c), [22, handleHex(1)])
    c.send(requestHex(READ, 2, 0, 4))
    assert.deepEqual(await simple(c), [0, handleHex(2)])
    assert.equal((await c.read(4)).toString(), 'abcd')
  })

  it('answers a READ past the end with an error chunk when structured, then an OFFSET_DATA chunk', async () => {
    const c = await client({structured: true})
    c.send(requestHex(READ, 7, SIZE, 1))
    const h = await c.read(20)
    assert.equal(h.toString('hex', 0, 16), '668e33ef' + '0001' + '8001' + handleHex(7))
    const body = await c.read(h.readUInt32BE(16))
    assert.equal(body.readUInt32BE(0), 22)
    assert.match(body.subarray(6).toString(), /beyond the end of the export/)
    backend.data.write('xyz', 10)
    c.send(requestHex(READ, 8, 10, 3))
    assert.equal(await c.readHex(28), '668e33ef' + '0001' + '0001' + handleHex(8) + '0000000b' + '000000000000000a')
    assert.equal((await c.read(3)).toString(), 'xyz')
  })

  it('drains the payload of a WRITE past the end, replies ENOSPC and writes nothing', async () => {
    const c = await client()
    c.send(requestHex(WRITE, 3, SIZE - 1, 4096) + 'ee'.repeat(4096))
    assert.deepEqual(await simple(c), [28, handleHex(3)])
    c.send(requestHex(WRITE, 4, 0, 2) + 'ee'.repeat(2))
    assert.deepEqual(await simple(c), [0, handleHex(4)])
    assert.deepEqual(backend.calls, ['write@0'])
  })

  it('answers an unknown command and unknown flags with EINVAL and keeps serving', async () => {
    const c = await client()
    c.send(requestHex(42, 5, 0, 0))
    assert.deepEqual(await simple(c), [22, handleHex(5)])
    c.send(requestHex(READ, 6, 0, 1, 0x100))
    assert.deepEqual(await simple(c), [22, handleHex(6)])
    c.send(requestHex(BLOCK_STATUS, 9, 0, 1)) // base:allocation not negotiated
    assert.deepEqual(await simple(c), [22, handleHex(9)])
    c.send(requestHex(READ, 10, 0, 1))
    assert.deepEqual(await simple(c), [0, handleHex(10)])
  })

  it('hangs up on a request with a bad magic', async () => {
    const c = await client()
    c.send('25609514' + requestHex(READ, 1, 0, 1).slice(8))
    assert.equal(await c.closesWithin(2000), true)
    await s.server.close()
    assert.match(s.logs.join('\n'), /bad request magic 0x25609514/)
  })

  it('hangs up on a WRITE over the 32 MiB cap without reading it, and still serves another client', async () => {
    const c = await client()
    c.send(requestHex(WRITE, 1, 0, 32 * 1024 * 1024 + 1) + 'ff'.repeat(1000))
    assert.equal(await c.closesWithin(2000), true)
    assert.deepEqual(backend.calls, [])
    const d = await client()
    d.send(requestHex(WRITE, 2, 0, 1) + '01')
    assert.deepEqual(await simple(d), [0, handleHex(2)])
    await s.server.close()
    assert.match(s.logs.join('\n'), /write of 33554433 bytes is over the 33554432-byte limit/)
  })

  it('replies out of order when a later request finishes first, each with its own handle', async () => {
    backend.data.fill(1, 0, 4096)
    backend.data.fill(2, 4096, 8192)
    backend.delay = (kind, off) => (kind === 'read' && off === 0 ? 200 : 0)
    const c = await client()
    c.send(requestHex(READ, 0xa1, 0, 4096) + requestHex(READ, 0xa2, 4096, 4096))
    assert.deepEqual(await simple(c), [0, handleHex(0xa2)])
    assert.ok((await c.read(4096)).every((b) => b === 2))
    assert.deepEqual(await simple(c), [0, handleHex(0xa1)])
    assert.ok((await c.read(4096)).every((b) => b === 1))
  })

  it('applies overlapping writes in order and orders a later overlapping read after them', async () => {
    backend.delay = (kind, off) => (kind === 'write' && off === 0 ? 150 : 0)
    const c = await client()
    c.send(requestHex(WRITE, 1, 0, 8) + 'aa'.repeat(8))
    c.send(requestHex(WRITE, 2, 4, 8) + 'bb'.repeat(8))
    c.send(requestHex(READ, 3, 0, 12))
    const got = new Map<string, number>()
    for (let i = 0; i < 3; i++) {
      const [err, h] = await simple(c)
      got.set(h, err)
      if (h === handleHex(3)) assert.equal((await c.read(12)).toString('hex'), 'aa'.repeat(4) + 'bb'.repeat(8))
    }
    assert.equal(got.size, 3)
    assert.equal(backend.data.toString('hex', 0, 12), 'aa'.repeat(4) + 'bb'.repeat(8))
  })

  it('answers BLOCK_STATUS with a base:allocation chunk, one descriptor with REQ_ONE', async () => {
    const c = await client({structured: true, meta: true})
    c.send(requestHex(BLOCK_STATUS, 4, 0, 8192))
    assert.equal(await c.readHex(40), '668e33ef' + '0001' + '0005' + handleHex(4) + '00000014' + '00000001' + '00001000' + '00000000' + '00001000' + '00000003')
    c.send(requestHex(BLOCK_STATUS, 5, 0, 8192, 8))
    assert.equal(await c.readHex(32), '668e33ef' + '0001' + '0005' + handleHex(5) + '0000000c' + '00000001' + '00001000' + '00000000')
  })

  it('maps a backend failure to its NBD error and logs it once, in the connection line', async () => {
    backend.failWith = (kind) => (kind === 'write' ? Object.assign(new Error('disk full'), {code: 'ENOSPC'}) : undefined)
    const c = await client({structured: true})
    c.send(requestHex(WRITE, 1, 0, 4) + '00'.repeat(4))
    const h = await c.read(20)
    assert.equal(h.readUInt16BE(6), 0x8001)
    const body = await c.read(h.readUInt32BE(16))
    assert.equal(body.readUInt32BE(0), 28)
    assert.match(body.subarray(6).toString(), /write of 4 bytes at offset 0 failed: disk full/)
    c.send(requestHex(DISC, 2, 0, 0))
    assert.equal(await c.closesWithin(2000), true)
    await s.server.close()
    assert.equal(s.logs.length, 1)
    assert.match(s.logs[0], /1 errors; client disconnected .*first error: write of 4 bytes/)
  })

  it('serves 2000 pipelined requests, every handle answered once', async () => {
    const c = await client()
    let batch = ''
    for (let i = 0; i < 2000; i++) batch += requestHex(i % 2 ? READ : WRITE, i, (i * 512) % SIZE, 512) + (i % 2 ? '' : '5a'.repeat(512))
    c.send(batch)
    const seen = new Set<string>()
    for (let i = 0; i < 2000; i++) {
      const [err, h] = await simple(c)
      assert.equal(err, 0)
      seen.add(h)
      if (Number.parseInt(h, 16) % 2) await c.read(512)
    }
    assert.equal(seen.size, 2000)
  })

  it('writes nothing when the client hangs up in the middle of a WRITE payload', async () => {
    const c = await client()
    c.send(requestHex(WRITE, 1, 0, 4096) + 'cc'.repeat(100))
    c.end()
    await c.closed
    await s.server.close()
    assert.deepEqual(backend.calls, [])
    assert.match(s.logs[0], /client hung up during the request/)
  })
})
