// SocketReader.adopt: the reader takes over an accepted socket's handle and the kernel reads
// into its recycled slabs. Fields come out right whatever the chunking, lent views keep
// their bytes until released (and only then is their slab reused), the
// server still counts the connection, and a socket that already reads is left alone.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import net from 'node:net'
import path from 'node:path'
import {SocketReader} from '../../../src/core/transport/socket-reader.js'
import {tempDir} from '../tracker/nbd/harness.js'

interface Pair {
  server: net.Server
  client: net.Socket
  accepted: net.Socket
  sock: string
}

async function pair(dir: string, pauseOnConnect = true): Promise<Pair> {
  const sock = path.join(dir, `r${Math.random().toString(36).slice(2)}.sock`)
  let onAccept!: (s: net.Socket) => void
  const accepted = new Promise<net.Socket>((r) => (onAccept = r))
  const server = net.createServer({pauseOnConnect}, onAccept)
  await new Promise<void>((r) => server.listen(sock, r))
  const client = net.connect(sock)
  await new Promise<void>((r) => client.once('connect', r))
  return {server, client, accepted: await accepted, sock}
}

/** Write `data` in pieces of random sizes, respecting backpressure. */
async function send(client: net.Socket, data: Buffer): Promise<void> {
  for (let pos = 0; pos < data.length;) {
    const n = Math.min(data.length - pos, 1 + Math.floor(Math.random() * 300_000))
    if (!client.write(data.subarray(pos, pos + n))) await new Promise((r) => client.once('drain', r))
    pos += n
  }
}

describe('nbd socket reader: adopted sockets read into recycled slabs', () => {
  let dir: string
  let cleanup: () => Promise<void>
  before(async () => ({dir, cleanup} = await tempDir()))
  after(async () => cleanup())

  it('gives the same bytes as were sent, views and copies alike, and reuses a few slabs', async () => {
    const {server, client, accepted} = await pair(dir)
    const adopted = SocketReader.adopt(accepted)
    assert.ok(adopted, 'adoption works on this Node')
    const {socket, reader} = adopted
    assert.ok(reader.adopted)
    const data = randomBytes(24 * 1024 * 1024)
    const sending = send(client, data)
    const slabs = new Set<ArrayBufferLike>()
    /** A slab is 1 MiB; a pooled copy has a buffer of its own length (fields here are < 1 MiB). */
    const isSlab = (b: Buffer) => b.buffer.byteLength === 1 << 20
    let pos = 0
    const held: Buffer[] = []
    while (pos < data.length) {
      const n = Math.min(data.length - pos, Math.random() < 0.5 ? 28 : 1 + Math.floor(Math.random() * 200_000))
      const lend = Math.random() < 0.7
      const field = lend ? (reader.lendNow(n) ?? (await reader.lend(n))) : (reader.readNow(n) ?? (await reader.read(n)))
      assert.equal(field.length, n)
      assert.ok(field.equals(data.subarray(pos, pos + n)), `bytes ${pos}..${pos + n}`)
      if (lend) {
        if (isSlab(field)) slabs.add(field.buffer)
        held.push(field)
        // Keep a few in flight, like writes waiting for the disk, and check them on release.
        while (held.length > 8) {
          const b = held.shift() as Buffer
          assert.equal(reader.release(b), isSlab(b))
        }
      }
      pos += n
    }
    for (const b of held) reader.release(b)
    await sending
    assert.ok(slabs.size <= 8, `${slabs.size} slabs for 24 MiB`)
    assert.equal(reader.release(Buffer.alloc(4)), false, 'not a view it lent')
    client.end()
    await assert.rejects(reader.read(1), {code: 'NBD_EOF'})
    socket.destroy()
    // The server counts the adopted socket: close() completes once it is gone.
    await new Promise((r) => server.close(r))
  })

  it('a lent view keeps its bytes while megabytes more arrive, until released', async () => {
    const {server, client, accepted} = await pair(dir)
    const {socket, reader} = SocketReader.adopt(accepted) as {socket: net.Socket; reader: SocketReader}
    const first = randomBytes(64 * 1024)
    client.write(first)
    const view = await reader.lend(first.length)
    const rest = randomBytes(16 * 1024 * 1024)
    const sending = send(client, rest)
    let wrapped = false
    for (let pos = 0; pos < rest.length; pos += 65536) {
      const b = await reader.lend(65536)
      assert.ok(b.equals(rest.subarray(pos, pos + 65536)))
      // Its slab may fill up behind it, but never starts over while it is pinned.
      if (b.buffer === view.buffer && b.byteOffset < view.byteOffset + view.length) wrapped = true
      reader.release(b)
    }
    await sending
    assert.ok(view.equals(first), 'the pinned view was not overwritten')
    assert.ok(!wrapped, 'its slab was not reused while pinned')
    assert.ok(reader.release(view))
    // Released: its slab is reused by what comes next.
    const more = randomBytes(8 * 1024 * 1024)
    const sending2 = send(client, more)
    let reused = false
    for (let pos = 0; pos < more.length; pos += 65536) {
      const b = await reader.lend(65536)
      assert.ok(b.equals(more.subarray(pos, pos + 65536)))
      if (b.buffer === view.buffer) reused = true
      reader.release(b)
    }
    await sending2
    assert.ok(reused, 'the released slab came back into use')
    client.destroy()
    socket.destroy()
    await new Promise((r) => server.close(r))
  })

  it('a field that spans two reads into one slab is lent as a view of it, not copied', async () => {
    const {server, client, accepted} = await pair(dir)
    const adopted = SocketReader.adopt(accepted)
    assert.ok(adopted)
    const {socket, reader} = adopted
    const data = randomBytes(64 * 1024)
    // Half of the field, read by the reader before the rest is even sent: two reads.
    client.write(data.subarray(0, 30_000))
    assert.ok((await reader.peek(30_000)).equals(data.subarray(0, 30_000)))
    client.write(data.subarray(30_000))
    const field = await reader.lend(data.length)
    assert.ok(field.equals(data))
    assert.equal(field.buffer.byteLength, 1 << 20, 'a view of the slab')
    assert.equal(reader.release(field), true, 'it pinned the slab')
    client.end()
    await assert.rejects(reader.read(1), {code: 'NBD_EOF'})
    socket.destroy()
    server.close()
  })

  it('writes go out through the adopted socket, and the peer sees its end', async () => {
    const {server, client, accepted} = await pair(dir)
    const {socket, reader} = SocketReader.adopt(accepted) as {socket: net.Socket; reader: SocketReader}
    const got: Buffer[] = []
    client.on('data', (d: Buffer) => got.push(d))
    const ended = new Promise((r) => client.once('end', r))
    client.write('ping')
    assert.equal((await reader.read(4)).toString(), 'ping')
    socket.end('pong')
    await ended
    assert.equal(Buffer.concat(got).toString(), 'pong')
    client.destroy()
    await new Promise((r) => server.close(r))
  })

  it('leaves a socket that already reads as it was', async () => {
    const {server, client, accepted} = await pair(dir, false)
    assert.equal(SocketReader.adopt(accepted), null)
    const reader = new SocketReader(accepted)
    assert.equal(reader.adopted, false)
    client.write('hello')
    assert.equal((await reader.read(5)).toString(), 'hello')
    client.destroy()
    accepted.destroy()
    await new Promise((r) => server.close(r))
  })
})
