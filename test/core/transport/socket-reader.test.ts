import assert from 'node:assert/strict'
import {PassThrough} from 'node:stream'
import {SocketReader} from '../../../src/core/transport/socket-reader.js'

describe('nbd socket reader', () => {
  const message = Buffer.from(Array.from({length: 64}, (_, i) => i))

  it('returns the same fields whatever the chunking (split at every byte)', async () => {
    for (let cut = 0; cut <= message.length; cut++) {
      const s = new PassThrough()
      const r = new SocketReader(s)
      s.write(message.subarray(0, cut))
      setImmediate(() => s.write(message.subarray(cut)))
      assert.deepEqual(await r.read(10), message.subarray(0, 10))
      await r.skip(20)
      assert.deepEqual(await r.read(34), message.subarray(30))
      assert.equal(r.available, 0)
    }
  })

  it('reads a field delivered one byte at a time', async () => {
    const s = new PassThrough()
    const r = new SocketReader(s)
    const p = r.read(16)
    for (let i = 0; i < 16; i++) {
      s.write(message.subarray(i, i + 1))
      await new Promise((res) => setImmediate(res))
    }
    assert.deepEqual(await p, message.subarray(0, 16))
  })

  it('fails a read the stream ends before with NBD_EOF, but serves what was buffered', async () => {
    const s = new PassThrough()
    const r = new SocketReader(s)
    s.end(message.subarray(0, 8))
    assert.deepEqual(await r.read(4), message.subarray(0, 4))
    await assert.rejects(r.read(8), {code: 'NBD_EOF'})
  })

  it('cancel rejects a pending read with the given error', async () => {
    const s = new PassThrough()
    const r = new SocketReader(s)
    const p = r.read(4)
    r.cancel(Object.assign(new Error('stop'), {code: 'X'}))
    await assert.rejects(p, {code: 'X'})
  })

  it('skips megabytes without holding them', async () => {
    const s = new PassThrough()
    const r = new SocketReader(s)
    const chunk = Buffer.alloc(256 * 1024, 7)
    const writer = (async () => {
      for (let i = 0; i < 16; i++) if (!s.write(chunk)) await new Promise((res) => s.once('drain', res))
      s.write(Buffer.from('tail'))
    })()
    await r.skip(16 * chunk.length)
    assert.equal((await r.read(4)).toString(), 'tail')
    await writer
  })

  it('lends a payload larger than its high-water mark as it arrives, without holding all of it buffered (issue 21)', async () => {
    const s = new PassThrough({highWaterMark: 64 * 1024})
    const r = new SocketReader(s)
    const payload = Buffer.alloc(5 * 1024 * 1024 + 17)
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + (i >> 13)) & 0xff
    let mostBuffered = 0
    const writer = (async () => {
      for (let at = 0; at < payload.length; at += 64 * 1024) {
        mostBuffered = Math.max(mostBuffered, r.available)
        if (!s.write(payload.subarray(at, Math.min(at + 64 * 1024, payload.length)))) await new Promise((res) => s.once('drain', res))
      }
      s.write(Buffer.from('next'))
    })()
    const lent = await r.lend(payload.length)
    assert.ok(lent.equals(payload), 'the lent bytes are the payload, in order')
    // It waited for the input a high-water mark (1 MiB) at a time: never the whole 5 MiB held.
    assert.ok(mostBuffered <= 2 * 1024 * 1024, `at most ${mostBuffered} bytes were buffered`)
    r.release(lent)
    assert.equal((await r.read(4)).toString(), 'next', 'the framing after it is intact')
    await writer
  })

  it('a large lend the input ends inside rejects with NBD_EOF', async () => {
    const s = new PassThrough()
    const r = new SocketReader(s)
    const p = r.lend(3 * 1024 * 1024)
    s.write(Buffer.alloc(1024 * 1024 + 5))
    s.end()
    await assert.rejects(p, {code: 'NBD_EOF'})
  })
})
