import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {MessageChannel} from 'node:worker_threads'
import {markLent} from '../../../src/core/protocol/lent-buffers.js'
import {portDuplex} from '../../../src/core/transport/port-stream.js'

/** The next chunk `s` gives. */
function nextChunk(s: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve) => s.once('data', resolve))
}

describe('portDuplex (the in-process carrier of a local target)', () => {
  it('has taken the bytes when the write callback runs: a writer may overwrite its buffer then', async () => {
    const {port1, port2} = new MessageChannel()
    const a = portDuplex(port1)
    const b = portDuplex(port2)
    const sent = createHash('sha256')
    const got = createHash('sha256')
    let received = 0
    const total = 400 * 70_000 + 400 * 24
    const done = new Promise<void>((resolve) => {
      b.on('data', (d: Buffer) => {
        got.update(d)
        received += d.length
        if (received >= total) resolve()
      })
    })
    const buf = Buffer.allocUnsafe(70_000)
    const small = Buffer.allocUnsafe(24)
    for (let i = 0; i < 400; i++) {
      randomBytes(small.length).copy(small)
      randomBytes(buf.length).copy(buf)
      sent.update(small).update(buf)
      a.cork()
      a.write(small)
      await new Promise<void>((resolve, reject) => {
        a.write(buf, (err) => (err ? reject(err) : resolve()))
        a.uncork()
      })
      // Reuse both at once, as a pooled reader would.
      small.fill(0xaa)
      buf.fill(0xbb)
    }
    await done
    assert.equal(got.digest('hex'), sent.digest('hex'))
    a.destroy()
    b.destroy()
  })

  // The ownership rule (lent-buffers.ts): shared memory a writer gives (a full sync's chunk
  // views, released by a protocol acknowledgement) goes over as a view; shared memory it lends
  // until the write callback is copied, since the writer reuses it then.
  it('posts a given shared-memory chunk as a view, and copies a lent one before its write calls back', async () => {
    const {port1, port2} = new MessageChannel()
    const a = portDuplex(port1)
    const b = portDuplex(port2)
    try {
      const given = Buffer.from(new SharedArrayBuffer(64 << 10)).fill(1)
      let got = nextChunk(b)
      a.write(given)
      const view = await got
      assert.ok(view.buffer instanceof SharedArrayBuffer, 'a given shared chunk arrives as a view of the same memory')
      given.fill(3)
      assert.equal(view[0], 3)

      const lent = Buffer.from(new SharedArrayBuffer(64 << 10)).fill(2)
      markLent(lent)
      got = nextChunk(b)
      await new Promise<void>((resolve, reject) => a.write(lent, (err) => (err ? reject(err) : resolve())))
      lent.fill(9) // the lender's right once the write called back
      const copy = await got
      assert.ok(!(copy.buffer instanceof SharedArrayBuffer), 'a lent chunk is copied')
      assert.ok(copy.equals(Buffer.alloc(64 << 10, 2)), 'the receiver sees the bytes as they were lent')
    } finally {
      a.destroy()
      b.destroy()
    }
  })
})
