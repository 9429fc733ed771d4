// Tests of src/core/protocol/frame-reader.ts, the one frame reader, over both its byte
// sources. Through a PassThrough (StreamSource): a hand-written stream of frames split at
// every byte offset, each hostile header refused with its own code after its 8 bytes (before
// any payload is allocated or awaited), truncation at every byte, timeouts. Over a server
// socket taken over as `vdrep serve` takes them (SocketReader slabs): the same frames, lent
// bodies held back while slabs are reused, ends, peeks. And the ownership rule of
// lent-buffers.ts: a lent body is never overwritten before its release().
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {once} from 'node:events'
import net from 'node:net'
import {PassThrough} from 'node:stream'
import {ProtocolError, TransportError} from '../../../src/core/errors.js'
import {encodeFrameHeader, FrameType, MAX_PAYLOAD} from '../../../src/core/protocol/frame.js'
import {FrameReader, type Frame} from '../../../src/core/protocol/frame-reader.js'
import {DATA_FIELDS_SIZE} from '../../../src/core/protocol/messages.js'
import {SocketReader} from '../../../src/core/transport/socket-reader.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const tick = () => new Promise((res) => setImmediate(res))

// Four frames: CHECKPOINT (16-byte payload), DONE with an empty payload, DATA (block 7, its
// hash, a 4-byte body), ERROR (10 bytes). A DATA frame's fields come as the payload, its block as the body.
const STREAM = hex(`
  56 44 07 00 10 00 00 00  0100000000000000 0200000000000000
  56 44 09 00 00 00 00 00
  56 44 05 00 2c 00 00 00  0700000000000000 ${'ab'.repeat(32)} deadbeef
  56 44 03 00 0a 00 00 00  0200 0100 45 0100 6d 0000`)
const EXPECTED: Frame[] = [
  {type: FrameType.CHECKPOINT, payload: hex('0100000000000000 0200000000000000')},
  {type: FrameType.DONE, payload: Buffer.alloc(0)},
  {type: FrameType.DATA, payload: hex(`0700000000000000 ${'ab'.repeat(32)}`), body: hex('deadbeef')},
  {type: FrameType.ERROR, payload: hex('0200 0100 45 0100 6d 0000')},
]
/** Where each frame of STREAM ends. */
const FRAME_ENDS = [24, 32, 84, 102]

/** A frame without its release function, to compare with deepEqual. */
function strip(f: Frame | null): Frame | null {
  if (!f) return f
  const {release, ...rest} = f
  assert.equal(typeof release, f.body ? 'function' : 'undefined', 'a body, and only a body, is lent')
  return rest
}

async function readAll(r: FrameReader): Promise<Frame[]> {
  const out: Frame[] = []
  for (let f = await r.next(); f; f = await r.next()) out.push(strip(f) as Frame)
  return out
}

/** Feed chunks one tick apart, then end. */
async function feed(s: PassThrough, chunks: Buffer[], end = true): Promise<void> {
  for (const c of chunks) {
    s.write(c)
    await tick()
  }
  if (end) s.end()
}

type AllocFn = (n: number, ...rest: unknown[]) => Buffer
const ALLOCATORS = ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const

/** Record every Buffer allocation size while fn runs; a rejection is returned, not thrown. */
async function allocations(fn: () => Promise<unknown>): Promise<{result: unknown; sizes: number[]}> {
  const sizes: number[] = []
  const b = Buffer as unknown as Record<(typeof ALLOCATORS)[number], AllocFn>
  const orig = ALLOCATORS.map((k) => b[k])
  ALLOCATORS.forEach((k, i) => {
    b[k] = (n, ...rest) => (sizes.push(n), orig[i].call(Buffer, n, ...rest))
  })
  try {
    return {result: await fn().catch((e: unknown) => e), sizes}
  } finally {
    ALLOCATORS.forEach((k, i) => (b[k] = orig[i]))
  }
}

describe('frame reader over a Readable (StreamSource)', () => {
  it('reads the frames of one chunk', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s)
    s.end(STREAM)
    assert.deepEqual(await readAll(r), EXPECTED)
  })

  it('reads the same frames with the stream split at every byte offset', async () => {
    for (let cut = 0; cut <= STREAM.length; cut++) {
      const s = new PassThrough()
      const r = new FrameReader(s)
      const writer = feed(s, [STREAM.subarray(0, cut), STREAM.subarray(cut)])
      assert.deepEqual(await readAll(r), EXPECTED, `cut at ${cut}`)
      await writer
    }
  })

  it('reads the same frames with the stream split at every pair of offsets', async () => {
    for (let a = 0; a <= STREAM.length; a += 3) {
      for (let b = a; b <= STREAM.length; b++) {
        const s = new PassThrough()
        const r = new FrameReader(s)
        s.write(STREAM.subarray(0, a))
        s.write(STREAM.subarray(a, b))
        s.end(STREAM.subarray(b))
        assert.deepEqual(await readAll(r), EXPECTED, `cuts at ${a}, ${b}`)
      }
    }
  })

  it('reads a stream delivered one byte at a time', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s)
    const writer = feed(
      s,
      [...STREAM].map((b) => Buffer.from([b])),
    )
    assert.deepEqual(await readAll(r), EXPECTED)
    await writer
  })

  it('fails a stream that ends at every byte inside a frame with FRAME_TRUNCATED, after the whole frames', async () => {
    assert.equal(STREAM.length, FRAME_ENDS[FRAME_ENDS.length - 1])
    for (let n = 1; n < STREAM.length; n++) {
      const s = new PassThrough()
      const r = new FrameReader(s)
      s.end(STREAM.subarray(0, n))
      const whole = FRAME_ENDS.filter((e) => e <= n).length
      for (let i = 0; i < whole; i++) assert.deepEqual(strip(await r.next()), EXPECTED[i])
      if (FRAME_ENDS.includes(n)) assert.equal(await r.next(), null, `end at ${n}`)
      else await assert.rejects(r.next(), (e: unknown) => e instanceof ProtocolError && e.code === 'FRAME_TRUNCATED', `end at ${n}`)
    }
  })

  for (const [what, header, code] of [
    ['a header claiming 4 GiB', '56 44 05 00 ff ff ff ff', 'FRAME_TOO_LARGE'],
    ['a header claiming MAX_PAYLOAD + 1', '56 44 05 00 01 10 40 00', 'FRAME_TOO_LARGE'],
    ['a bad magic', '47 45 54 20 2f 20 48 54', 'FRAME_BAD_MAGIC'],
    ['an unknown type', '56 44 7f 00 10 00 00 00', 'FRAME_UNKNOWN_TYPE'],
    ['nonzero flags', '56 44 05 01 10 00 00 00', 'FRAME_BAD_FLAGS'],
  ] as const) {
    it(`refuses ${what} with ${code} after its 8 bytes, allocating nothing for the payload`, async () => {
      const s = new PassThrough()
      const r = new FrameReader(s)
      s.write(hex(header)) // the stream stays open: the reader must not wait for a payload
      const {result, sizes} = await allocations(() => r.next())
      assert.ok(result instanceof ProtocolError, String(result))
      assert.equal(result.code, code)
      assert.ok(
        sizes.every((n) => n <= 64),
        `allocated ${Math.max(...sizes)} bytes`,
      )
      s.destroy()
    })
  }

  it('refuses a header after good frames with its code', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s)
    s.write(Buffer.concat([STREAM, hex('56 44 05 00 ff ff ff ff')]))
    for (const f of EXPECTED) assert.deepEqual(strip(await r.next()), f)
    await assert.rejects(r.next(), {code: 'FRAME_TOO_LARGE'})
    s.destroy()
  })

  it('reads payloads of exactly MAX_PAYLOAD in small chunks and past the 8 MiB high-water mark', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s)
    const header = hex('56 44 05 00 00 10 40 00')
    const payload = Buffer.alloc(MAX_PAYLOAD)
    for (let i = 0; i < payload.length; i += 4096) payload[i] = (i >>> 12) & 0xff
    const one = Buffer.concat([header, payload])
    const all = Buffer.concat([one, one, one])
    for (let off = 0; off < all.length; off += 65536) s.write(all.subarray(off, off + 65536))
    s.end()
    const {result, sizes} = await allocations(async () => {
      for (let i = 0; i < 3; i++) {
        const f = await r.next()
        assert.ok(f)
        assert.equal(f.type, FrameType.DATA)
        assert.ok(f.payload.equals(payload.subarray(0, 40)))
        assert.ok(f.body?.equals(payload.subarray(40)))
      }
      assert.equal(await r.next(), null)
    })
    assert.equal(result, undefined)
    assert.equal(Math.max(...sizes), MAX_PAYLOAD - 40, 'a split body is gathered into one buffer of its length, no larger')
  })

  it('returns a payload and a DATA body inside one chunk without copying them', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s)
    const chunk = Buffer.from(STREAM)
    s.end(chunk)
    const frames = await readAll(r)
    assert.equal(frames[0].payload.buffer, chunk.buffer)
    assert.equal(frames[2].body?.buffer, chunk.buffer)
  })

  it('returns a DATA frame with no block bytes as fields only, and any other type whole', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s)
    s.end(hex(`56 44 05 00 28 00 00 00 0100000000000000 ${'cd'.repeat(32)}  56 44 02 00 30 00 00 00 ${'ef'.repeat(48)}`))
    assert.deepEqual(strip(await r.next()), {type: FrameType.DATA, payload: hex(`0100000000000000 ${'cd'.repeat(32)}`)})
    assert.deepEqual(strip(await r.next()), {type: FrameType.HELLO_OK, payload: hex('ef'.repeat(48))})
  })

  it('passes on a stream error', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s)
    s.write(STREAM.subarray(0, 10))
    const p = r.next()
    s.destroy(new Error('connection reset'))
    await assert.rejects(p, /connection reset/)
  })

  it('fails with IDLE_TIMEOUT when the peer goes quiet', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s, 30)
    s.write(STREAM.subarray(0, 3))
    await assert.rejects(r.next(), (e: unknown) => e instanceof TransportError && e.code === 'IDLE_TIMEOUT')
    s.destroy()
  })

  it('nextNow() and next() together give every frame once, in order, whatever the split (a header kept while its payload comes)', async () => {
    for (let cut = 1; cut < STREAM.length; cut++) {
      for (const cut2 of [cut + 1, cut + 7, cut + 40]) {
        const s = new PassThrough()
        const r = new FrameReader(s)
        const feeding = feed(s, [STREAM.subarray(0, cut), STREAM.subarray(cut, cut2), STREAM.subarray(cut2)])
        const out: Frame[] = []
        for (;;) {
          const f = r.nextNow() ?? (await r.next())
          if (!f) break
          out.push(strip(f) as Frame)
        }
        await feeding
        assert.deepEqual(out, EXPECTED, `split at ${cut} and ${cut2}`)
      }
    }
  })

  it('nextNow() throws on a bad header that is all here, as next() would reject', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s)
    s.write(Buffer.from([0x56, 0x44, 0x05, 0x00, 0xff, 0xff, 0xff, 0x7f]))
    await assert.rejects(r.next(), {code: 'FRAME_TOO_LARGE'})
    const s2 = new PassThrough()
    const r2 = new FrameReader(s2)
    s2.write(STREAM.subarray(0, 24))
    assert.ok(await r2.next())
    s2.write(Buffer.from([0x56, 0x44, 0x05, 0x00, 0xff, 0xff, 0xff, 0x7f]))
    await tick()
    await r2.peek(0)
    assert.throws(() => r2.nextNow(), {code: 'FRAME_TOO_LARGE'})
  })

  it('does not cut a slow trickle: a byte every half timeout keeps the wait alive', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s, 60)
    const frame = r.next()
    for (let i = 0; i < STREAM.length && i < 10; i++) {
      s.write(STREAM.subarray(i, i + 1))
      await new Promise((res) => setTimeout(res, 30))
    }
    s.write(STREAM.subarray(10))
    assert.ok(await frame)
    s.destroy()
  })

  it('gives a wait that starts late in the timer period a whole timeout (our own slowness is not the peer being quiet)', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s, 200)
    // A first wait arms the one timer; its frame arrives at once (the check at 200 ms sees it).
    const first = r.next()
    s.write(STREAM.subarray(0, 24))
    await first
    // We are busy until 360 ms (no wait), then wait for a frame that comes 120 ms later: the
    // check at 400 ms must not count the 40 ms of that wait as a quiet period.
    await new Promise((res) => setTimeout(res, 360))
    const second = r.next()
    setTimeout(() => s.write(STREAM.subarray(24)), 120)
    assert.ok(await second, 'the late wait was not cut')
    // And a wait with nothing coming is still cut, within two timeouts.
    const t = performance.now()
    for (;;) {
      const f = await r.next().catch((e: unknown) => e)
      if (f instanceof TransportError) {
        assert.equal(f.code, 'IDLE_TIMEOUT')
        break
      }
      assert.ok(f, 'the stream ended instead of timing out')
    }
    assert.ok(performance.now() - t < 500, `cut after ${performance.now() - t} ms`)
    s.destroy()
  })

  it('returns null on an empty stream and after a clean end', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s)
    s.end()
    assert.equal(await r.next(), null)
    assert.equal(await r.next(), null)
  })
})

/** A server socket taken over the way `vdrep serve` takes them (SocketReader slabs), and the client end. */
async function adoptedPair(): Promise<{client: net.Socket; reader: FrameReader; server: net.Server}> {
  let resolveReader!: (r: FrameReader) => void
  const got = new Promise<FrameReader>((r) => (resolveReader = r))
  const server = net.createServer({pauseOnConnect: true}, (s) => {
    const adopted = SocketReader.adopt(s)
    assert.ok(adopted, 'this Node lets the socket be taken over')
    resolveReader(new FrameReader(adopted.reader))
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

describe('frame reader over a taken-over socket (SocketReader slabs, the receiver over SSH)', () => {
  it('reads the hand-written frames, sent in pieces', async () => {
    const {client, reader, server} = await adoptedPair()
    try {
      let from = 0
      for (const cut of [5, 30, 83]) {
        client.write(STREAM.subarray(from, cut))
        from = cut
        await tick()
      }
      client.end(STREAM.subarray(from))
      assert.deepEqual(await readAll(reader), EXPECTED)
    } finally {
      client.destroy()
      server.close()
    }
  })

  it('reads 48 MiB of DATA frames intact while lent bodies are held back, and reuses released memory', async () => {
    const {client, reader, server} = await adoptedPair()
    try {
      const bodies = Array.from({length: 768}, (_, i) => randomBytes(65536 + (i % 3) * 1000))
      const writing = (async () => {
        for (let i = 0; i < bodies.length; i++) if (!client.write(dataFrame(i, bodies[i]))) await once(client, 'drain')
        client.end()
      })()
      const held: Array<{i: number; body: Buffer; release: () => void}> = []
      const payloads: Buffer[] = []
      for (let i = 0; ; i++) {
        const f = await reader.next()
        if (!f) break
        assert.equal(f.type, FrameType.DATA)
        assert.ok(f.body && f.release, 'a DATA body is lent')
        assert.equal(f.payload[0], i & 255)
        payloads.push(f.payload)
        held.push({i, body: f.body, release: f.release})
        // Hold up to 40 bodies (several slabs) before giving the oldest back, as writes in flight do.
        while (held.length > 40) {
          const h = held.shift()!
          assert.ok(h.body.equals(bodies[h.i]), `body ${h.i} changed while it was lent`)
          h.release()
        }
      }
      for (const h of held) assert.ok(h.body.equals(bodies[h.i]), `body ${h.i} changed while it was lent`)
      // Payloads are not lent: they stay as received however many slabs were reused since.
      payloads.forEach((p, i) => assert.ok(p.equals(Buffer.alloc(DATA_FIELDS_SIZE, i & 255)), `payload ${i} changed`))
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

describe('the ownership rule for lent bodies (lent-buffers.ts)', () => {
  it('a body copied because it straddled two chunks is never handed out again before its release(), and is reused after', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s)
    const bodies = Array.from({length: 12}, () => randomBytes(8192))
    // Each frame arrives in two chunks cut inside its body: every body is gathered into a pooled copy.
    for (let i = 0; i < bodies.length; i++) {
      const f = dataFrame(i, bodies[i])
      s.write(f.subarray(0, 1000))
      s.write(f.subarray(1000))
    }
    s.end()
    const held: Frame[] = []
    const released = new Set<ArrayBufferLike>()
    let reused = 0
    for (let i = 0; ; i++) {
      const f = await r.next()
      if (!f) break
      assert.ok(f.body && f.release)
      assert.ok(!held.some((h) => h.body?.buffer === f.body?.buffer), `body ${i} got the memory of a body not yet released`)
      if (released.has(f.body.buffer)) reused++
      if (i % 2 === 0) held.push(f)
      else {
        assert.ok(f.body.equals(bodies[i]))
        f.release()
        released.add(f.body.buffer)
      }
    }
    held.forEach((h, k) => assert.ok(h.body?.equals(bodies[k * 2]), `held body ${k * 2} was overwritten before its release()`))
    assert.ok(reused > 0, 'released bodies were never reused: the test proves nothing about the pool')
  })
})
