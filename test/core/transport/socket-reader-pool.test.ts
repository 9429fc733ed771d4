// readNow (no promise when the bytes are there), lent fields (views, or pooled copies of fields
// that span chunks, held until release()), and the pool that lends and takes back those buffers.
import assert from 'node:assert/strict'
import {PassThrough} from 'node:stream'
import {BufferPool} from '../../../src/core/util/buffer-pool.js'
import {SocketReader} from '../../../src/core/transport/socket-reader.js'

const tick = () => new Promise((r) => setImmediate(r))

describe('nbd socket reader: readNow and lent buffers', () => {
  const message = Buffer.from(Array.from({length: 64}, (_, i) => i))

  it('readNow gives buffered bytes at once and undefined otherwise', async () => {
    const s = new PassThrough()
    const r = new SocketReader(s)
    assert.equal(r.readNow(4), undefined)
    s.write(message.subarray(0, 10))
    await tick()
    assert.deepEqual(r.readNow(4), message.subarray(0, 4))
    assert.equal(r.readNow(7), undefined)
    assert.deepEqual(r.readNow(6), message.subarray(4, 10))
    assert.equal(r.available, 0)
  })

  it('lend: a field inside one chunk is a view; one that spans chunks is a pooled copy, not handed out again before its release', async () => {
    const s = new PassThrough()
    const r = new SocketReader(s)
    s.write(message.subarray(0, 20))
    await tick()
    s.write(message.subarray(20, 40))
    await tick()
    s.write(message.subarray(40))
    await tick()
    const inside = await r.lend(8)
    assert.deepEqual(inside, message.subarray(0, 8))
    assert.equal(inside.buffer, message.buffer, 'a view of the chunk as received')
    const spanning = r.lendNow(20) as Buffer
    assert.deepEqual(spanning, message.subarray(8, 28))
    assert.equal(spanning.buffer.byteLength, 20, 'a copy of its own, from the pool')
    // Held: the next spanning field of the same size gets other memory.
    const second = r.lendNow(20) as Buffer
    assert.deepEqual(second, message.subarray(28, 48))
    assert.notEqual(second.buffer, spanning.buffer)
    assert.deepEqual(spanning, message.subarray(8, 28), 'unchanged while lent')
    // Released: its memory is reused.
    r.release(spanning)
    s.write(message.subarray(0, 12))
    await tick()
    const third = r.lendNow(20) as Buffer
    assert.equal(third.buffer, spanning.buffer, 'the released copy is reused')
    assert.deepEqual(third, Buffer.concat([message.subarray(48), message.subarray(0, 4)]))
  })

  it('the pool lends exact sizes, takes back only its own, keeps at most its limits', () => {
    const pool = new BufferPool(10_000, 4096)
    const a = pool.take(4096)
    assert.equal(a.length, 4096)
    pool.give(a)
    assert.equal(pool.take(4096), a, 'reused')
    assert.notEqual(pool.take(4096), a, 'lent once at a time')
    pool.give(Buffer.alloc(4096)) // not lent: ignored
    const c = pool.take(4096)
    assert.notEqual(c, a)
    const big = pool.take(8192) // over maxSize: never kept
    pool.give(big)
    assert.notEqual(pool.take(8192), big)
    // maxCached: 10 000 bytes hold two 4096-byte buffers, not three
    const xs = [pool.take(4096), pool.take(4096), pool.take(4096)]
    for (const x of xs) pool.give(x)
    const again = [pool.take(4096), pool.take(4096), pool.take(4096)]
    assert.equal(again.filter((x) => xs.includes(x)).length, 2)
    pool.give(a)
    pool.give(a) // a second give of one loan is ignored
    assert.equal(pool.take(4096), a)
    assert.notEqual(pool.take(4096), a)
  })
})
