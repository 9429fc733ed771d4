// readNow (no promise when the bytes are there), copies of fields that span chunks going into
// a lent buffer, and the pool that lends and takes back those buffers.
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

  it('a field inside one chunk is a view; one that spans chunks is copied into the target', async () => {
    const s = new PassThrough()
    const r = new SocketReader(s)
    s.write(message.subarray(0, 20))
    await tick()
    s.write(message.subarray(20))
    await tick()
    const asked: number[] = []
    const target = (n: number) => {
      asked.push(n)
      return Buffer.alloc(n, 0xee)
    }
    const inside = await r.read(8, target)
    assert.deepEqual(inside, message.subarray(0, 8))
    assert.deepEqual(asked, [])
    const spanning = r.readNow(30, target) as Buffer
    assert.deepEqual(asked, [30])
    assert.deepEqual(spanning, message.subarray(8, 38))
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
