// KEEPALIVE (doc/protocol.md, "Keepalive"): the frame, hand-written; the reader skips it only
// for a client that asked for it (checked empty), and returns it as a frame otherwise (so the
// session refuses it); the receiver's pump sends one only when nothing else went out.
import assert from 'node:assert/strict'
import {PassThrough} from 'node:stream'
import {FrameType} from '../../../src/core/protocol/frame.js'
import {FrameReader} from '../../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../../src/core/protocol/frame-writer.js'
import {decodeKeepalive, HELLO_FLAGS_OFFSET, HelloFlag, KNOWN_HELLO_FLAGS} from '../../../src/core/protocol/messages.js'
import {startKeepalives} from '../../../src/core/receiver/keepalive-pump.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const malformed = (e: Error & {code?: string}) => e.code === 'FRAME_MALFORMED'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('KEEPALIVE', () => {
  it('is type 17 with no payload; hello flag bit 6, at byte 32 of the HELLO payload', () => {
    assert.equal(FrameType.KEEPALIVE, 17)
    assert.equal(HelloFlag.KEEPALIVE, 0x40)
    assert.ok(KNOWN_HELLO_FLAGS & 0x40)
    assert.equal(KNOWN_HELLO_FLAGS & ~0x1ff, 0, 'bits 9-31 stay reserved (bit 7 is GROUP, bit 8 COMPRESS)')
    assert.equal(HELLO_FLAGS_OFFSET, 2 + 1 + 1 + 4 + 8 + 16)
    decodeKeepalive(Buffer.alloc(0))
    for (const n of [1, 8, 4096]) assert.throws(() => decodeKeepalive(Buffer.alloc(n)), malformed)
  })

  it('a reader that asked skips keepalives between any frames; one that did not returns them', async () => {
    const bytes = hex(`
      56 44 11 00 00 00 00 00
      56 44 08 00 08 00 00 00  0500000000000000
      56 44 11 00 00 00 00 00
      56 44 11 00 00 00 00 00
      56 44 0d 00 10 00 00 00  0100000000000000 0200000003000000`)
    for (const accept of [true, false]) {
      const s = new PassThrough()
      const r = new FrameReader(s)
      r.acceptKeepalives = accept
      // split at every 3 bytes: skipping works across partial frames
      for (let i = 0; i < bytes.length; i += 3) s.write(bytes.subarray(i, i + 3))
      s.end()
      const types: number[] = []
      for (let f = await r.next(); f; f = await r.next()) types.push(f.type)
      assert.deepEqual(types, accept ? [8, 13] : [17, 8, 17, 17, 13])
    }
  })

  it('a keepalive with a payload is refused even by a reader that asked', async () => {
    const s = new PassThrough()
    const r = new FrameReader(s)
    r.acceptKeepalives = true
    s.end(hex('56 44 11 00 01 00 00 00 00'))
    await assert.rejects(r.next(), malformed)
  })

  it('the pump sends a keepalive only after the interval without another frame, and stops', async () => {
    const s = new PassThrough()
    const w = new FrameWriter(s)
    const got: Buffer[] = []
    s.on('data', (d: Buffer) => got.push(d))
    const stop = startKeepalives(w, 120)
    // A frame every 50 ms: the receiver is talking, no keepalive is needed.
    for (let i = 0; i < 6; i++) {
      await w.send(FrameType.CHECKPOINT_ACK, Buffer.alloc(8))
      await sleep(50)
    }
    assert.ok(
      got.every((b) => b[2] === FrameType.CHECKPOINT_ACK),
      'no keepalive while frames flow',
    )
    got.length = 0
    await sleep(400)
    const keepalives = got.filter((b) => b.equals(hex('56 44 11 00 00 00 00 00'))).length
    assert.ok(keepalives >= 1 && keepalives <= 4, `${keepalives} keepalives in 400 ms at a 120 ms interval`)
    stop()
    got.length = 0
    await sleep(300)
    assert.equal(got.length, 0, 'nothing after stop')
  })
})
