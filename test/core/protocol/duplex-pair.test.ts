// The in-memory carrier of a local target's receiver (this thread): copies, backpressure, hang-up.
import assert from 'node:assert/strict'
import {duplexPair} from '../../../src/core/protocol/duplex-pair.js'

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
  it('delivers a copy: the writer may reuse its buffer once the write called back', async () => {
    const [a, b] = duplexPair(1 << 16)
    const buf = Buffer.alloc(1000, 1)
    await once((cb) => a.write(buf, cb))
    buf.fill(2)
    a.end()
    assert.ok((await readAll(b)).equals(Buffer.alloc(1000, 1)))
  })

  it('a writer blocked on a full pipe goes on once the reader hangs up, and the hung-up end still said its last word', async () => {
    const [client, server] = duplexPair(1 << 16)
    server.write(Buffer.from('ERROR'))
    server.end()
    let written = 0
    let blocked = false
    const writes: Promise<void>[] = []
    for (let i = 0; i < 8; i++) {
      writes.push(once((cb) => client.write(Buffer.alloc(1 << 16), () => {
        written++
        cb()
      })))
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
