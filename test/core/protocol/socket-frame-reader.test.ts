import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {once} from 'node:events'
import net from 'node:net'
import {encodeFrameHeader, FrameType} from '../../../src/core/protocol/frame.js'
import {SocketFrameReader} from '../../../src/core/protocol/socket-frame-reader.js'
import {DATA_FIELDS_SIZE} from '../../../src/core/protocol/messages.js'

/** A server socket taken over the way `vdrep serve` takes them, and the client end. */
async function adoptedPair(): Promise<{client: net.Socket; reader: SocketFrameReader; server: net.Server}> {
  let resolveReader!: (r: SocketFrameReader) => void
  const got = new Promise<SocketFrameReader>((r) => (resolveReader = r))
  const server = net.createServer({pauseOnConnect: true}, (s) => {
    const adopted = SocketFrameReader.adopt(s)
    assert.ok(adopted, 'this Node lets the socket be taken over')
    resolveReader(adopted.reader)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  await once(client, 'connect')
  return {client, reader: await got, server}
}

function dataFrame(i: number, body: Buffer): Buffer {
  const fields = Buffer.alloc(DATA_FIELDS_SIZE, i & 255)
  return Buffer.concat([encodeFrameHeader(FrameType.DATA, fields.length + body.length), fields, body])
}

describe('SocketFrameReader (the receiver reading a taken-over socket)', () => {
  it('reads 48 MiB of DATA frames intact while lent bodies are held back, and reuses released memory', async () => {
    const {client, reader, server} = await adoptedPair()
    try {
      const bodies = Array.from({length: 768}, (_, i) => randomBytes(65536 + (i % 3) * 1000))
      const writing = (async () => {
        for (let i = 0; i < bodies.length; i++) if (!client.write(dataFrame(i, bodies[i]))) await once(client, 'drain')
        client.end()
      })()
      const held: Array<{i: number; body: Buffer; release: () => void}> = []
      for (let i = 0; ; i++) {
        const f = await reader.next()
        if (!f) break
        assert.equal(f.type, FrameType.DATA)
        assert.ok(f.body && f.release, 'a DATA body is lent')
        assert.equal(f.payload[0], i & 255)
        held.push({i, body: f.body, release: f.release})
        // Hold up to 40 bodies (several slabs) before giving the oldest back, as writes in flight do.
        while (held.length > 40) {
          const h = held.shift()!
          assert.ok(h.body.equals(bodies[h.i]), `body ${h.i} changed while it was lent`)
          h.release()
        }
      }
      for (const h of held) assert.ok(h.body.equals(bodies[h.i]), `body ${h.i} changed while it was lent`)
      await writing
    } finally {
      client.destroy()
      server.close()
    }
  })

  it('ends with null between frames, and with FRAME_TRUNCATED inside one', async () => {
    const a = await adoptedPair()
    a.client.end(Buffer.concat([encodeFrameHeader(FrameType.DONE, 3), Buffer.from('abc')]))
    const f = await a.reader.next()
    assert.equal(f?.type, FrameType.DONE)
    assert.equal(f?.payload.toString(), 'abc')
    assert.equal(await a.reader.next(), null)
    a.server.close()

    const b = await adoptedPair()
    b.client.end(encodeFrameHeader(FrameType.DONE, 10))
    await assert.rejects(b.reader.next(), {code: 'FRAME_TRUNCATED'})
    b.server.close()
  })

  it('peeks the first frame without consuming it', async () => {
    const {client, reader, server} = await adoptedPair()
    const frame = Buffer.concat([encodeFrameHeader(FrameType.DONE, 2), Buffer.from('hi')])
    client.end(frame)
    assert.ok((await reader.peek(frame.length)).equals(frame))
    assert.equal((await reader.peek(100)).length, frame.length, 'the peer ended: what arrived is all')
    assert.equal((await reader.next())?.payload.toString(), 'hi')
    server.close()
  })
})
