// The in-memory carrier of a local target's receiver (this thread): copies of lent buffers only, backpressure, hang-up.
import assert from 'node:assert/strict'
import {duplexPair} from '../../../src/core/transport/duplex-pair.js'
import {FrameType} from '../../../src/core/protocol/frame.js'
import {FrameReader} from '../../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../../src/core/protocol/frame-writer.js'
import {markLent} from '../../../src/core/protocol/lent-buffers.js'
import {DATA_FIELDS_SIZE} from '../../../src/core/protocol/messages.js'

/** Everything `s` gives until its end (without an async iterator, which destroys the pair). */
function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = []
    s.on('data', (c: Buffer) => got.push(c))
    s.on('end', () => resolve(Buffer.concat(got)))
    s.on('error', reject)
  })
}

function once(write: (cb: () => void) => void): Promise<void> {
  return new Promise((resolve) => write(resolve))
}

describe('duplex pair', () => {
  it('a lent buffer arrives as a copy: its writer may reuse it once the write called back', async () => {
    const [a, b] = duplexPair(1 << 16)
    const buf = Buffer.alloc(1000, 1)
    markLent(buf)
    await once((cb) => a.write(buf, cb))
    buf.fill(2)
    a.end()
    assert.ok((await readAll(b)).equals(Buffer.alloc(1000, 1)))
  })

  it('any other buffer is handed on as it is, without a copy', async () => {
    const [a, b] = duplexPair(1 << 16)
    const buf = Buffer.alloc(1000, 1)
    const got = new Promise<Buffer>((resolve) => b.once('data', resolve))
    a.write(buf)
    assert.equal(await got, buf)
  })

  it('FrameWriter.sendLent lends its body: the bytes received are the ones sent, though the buffer is reused at once', async () => {
    const [a, b] = duplexPair(1 << 16)
    const body = Buffer.alloc(4096, 7)
    const writer = new FrameWriter(a)
    await writer.sendLent(FrameType.DATA, Buffer.alloc(DATA_FIELDS_SIZE), body, () => body.fill(9))
    writer.end()
    const frame = await new FrameReader(b).next()
    assert.ok(frame?.body?.equals(Buffer.alloc(4096, 7)))
  })

  it('a writer blocked on a full pipe goes on once the reader hangs up, and the hung-up end still said its last word', async () => {
    const [client, server] = duplexPair(1 << 16)
    server.write(Buffer.from('ERROR'))
    server.end()
    let written = 0
    let blocked = false
    const writes: Promise<void>[] = []
    for (let i = 0; i < 8; i++) {
      writes.push(
        once((cb) =>
          client.write(Buffer.alloc(1 << 16), () => {
            written++
            cb()
          }),
        ),
      )
    }
    await new Promise((r) => setTimeout(r, 20))
    blocked = written < 8
    assert.ok(blocked, 'the pipe never filled: the test proves nothing')
    server.hangUp()
    await Promise.all(writes)
    assert.equal(written, 8)
    assert.equal((await readAll(client)).toString(), 'ERROR')
  })
})
