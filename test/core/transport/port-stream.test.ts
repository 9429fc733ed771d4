import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {MessageChannel} from 'node:worker_threads'
import {portDuplex} from '../../../src/core/transport/port-stream.js'

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
})
