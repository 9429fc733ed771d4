// Tests of src/core/protocol/frame.ts: the 8-byte frame header against hand-written bytes,
// each field's own error code, every byte flipped and every truncation.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {ProtocolError} from '../../../src/core/errors.js'
import {
  decodeFrameHeader,
  encodeFrameHeader,
  FRAME_HEADER_SIZE,
  FRAME_MAGIC,
  FrameType,
  frameTypeName,
  MAX_PAYLOAD,
  type FrameTypeId,
} from '../../../src/core/protocol/frame.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const isCode = (code: string) => (e: unknown) => e instanceof ProtocolError && e.code === code
const types = Object.values(FrameType) as FrameTypeId[]

describe('frame header codec', () => {
  it('has the documented constants', () => {
    assert.equal(FRAME_HEADER_SIZE, 8)
    assert.equal(FRAME_MAGIC, 0x4456)
    assert.equal(MAX_PAYLOAD, (4 << 20) + 4096)
  })

  it('encodes to the hand-written bytes', () => {
    assert.deepEqual(encodeFrameHeader(FrameType.DATA, 40), hex('56 44 05 00 28 00 00 00'))
    assert.deepEqual(encodeFrameHeader(FrameType.HELLO, 0), hex('56 44 01 00 00 00 00 00'))
    assert.deepEqual(encodeFrameHeader(FrameType.VERIFY_RESULT, MAX_PAYLOAD), hex('56 44 0a 00 00 10 40 00'))
  })

  it('decodes the hand-written bytes', () => {
    assert.deepEqual(decodeFrameHeader(hex('56 44 05 00 28 00 00 00')), {type: FrameType.DATA, length: 40})
    assert.deepEqual(decodeFrameHeader(hex('56 44 09 00 30 00 00 00')), {type: FrameType.DONE, length: 48})
    assert.deepEqual(decodeFrameHeader(hex('56 44 0a 00 00 10 40 00')), {type: FrameType.VERIFY_RESULT, length: MAX_PAYLOAD})
  })

  it('reads only the first 8 bytes of a longer buffer', () => {
    assert.deepEqual(decodeFrameHeader(hex('56 44 07 00 10 00 00 00 ff ff')), {type: FrameType.CHECKPOINT, length: 16})
  })

  it('round-trips every type and any length up to the limit', () => {
    fc.assert(
      fc.property(fc.constantFrom(...types), fc.integer({min: 0, max: MAX_PAYLOAD}), (type, length) => {
        assert.deepEqual(decodeFrameHeader(encodeFrameHeader(type, length)), {type, length})
      }),
    )
  })

  it('refuses a bad magic with FRAME_BAD_MAGIC', () => {
    assert.throws(() => decodeFrameHeader(hex('44 56 05 00 28 00 00 00')), isCode('FRAME_BAD_MAGIC'))
    assert.throws(() => decodeFrameHeader(hex('00 00 00 00 00 00 00 00')), isCode('FRAME_BAD_MAGIC'))
    assert.throws(() => decodeFrameHeader(Buffer.from('SSH-2.0-')), isCode('FRAME_BAD_MAGIC'))
  })

  it('refuses an unknown type with FRAME_UNKNOWN_TYPE', () => {
    for (const t of [0, Math.max(...types) + 1, 0x7f, 0xff]) {
      assert.throws(() => decodeFrameHeader(hex(`56 44 ${t.toString(16).padStart(2, '0')} 00 00 00 00 00`)), isCode('FRAME_UNKNOWN_TYPE'))
    }
  })

  it('refuses nonzero flags with FRAME_BAD_FLAGS', () => {
    for (let bit = 0; bit < 8; bit++) {
      assert.throws(() => decodeFrameHeader(hex(`56 44 05 ${(1 << bit).toString(16).padStart(2, '0')} 00 00 00 00`)), isCode('FRAME_BAD_FLAGS'))
    }
  })

  it('refuses a length past MAX_PAYLOAD with FRAME_TOO_LARGE, up to 4 GiB', () => {
    assert.throws(() => decodeFrameHeader(hex('56 44 05 00 01 10 40 00')), isCode('FRAME_TOO_LARGE'))
    assert.throws(() => decodeFrameHeader(hex('56 44 05 00 ff ff ff ff')), isCode('FRAME_TOO_LARGE'))
    assert.throws(() => decodeFrameHeader(hex('56 44 05 00 00 00 00 80')), isCode('FRAME_TOO_LARGE'))
  })

  it('refuses a header cut at every byte with FRAME_TRUNCATED', () => {
    const whole = hex('56 44 05 00 28 00 00 00')
    for (let n = 0; n < FRAME_HEADER_SIZE; n++) assert.throws(() => decodeFrameHeader(whole.subarray(0, n)), isCode('FRAME_TRUNCATED'), `length ${n}`)
  })

  it('detects every single flipped byte: a protocol error or a different header', () => {
    const whole = hex('56 44 05 00 28 00 00 00')
    for (let i = 0; i < FRAME_HEADER_SIZE; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const b = Buffer.from(whole)
        b[i] ^= mask
        let got: unknown
        try {
          got = decodeFrameHeader(b)
        } catch (e) {
          assert.ok(e instanceof ProtocolError, `byte ${i}`)
          assert.equal(e.code, i < 2 ? 'FRAME_BAD_MAGIC' : i === 3 ? 'FRAME_BAD_FLAGS' : i === 2 ? 'FRAME_UNKNOWN_TYPE' : 'FRAME_TOO_LARGE')
          continue
        }
        assert.ok(i === 2 || i >= 4, `byte ${i} mask ${mask} was accepted`)
        assert.notDeepEqual(got, {type: FrameType.DATA, length: 40})
      }
    }
  })

  it('refuses to encode a payload past the limit', () => {
    assert.throws(() => encodeFrameHeader(FrameType.DATA, MAX_PAYLOAD + 1), RangeError)
  })

  it('names frame types', () => {
    assert.equal(frameTypeName(FrameType.HELLO_OK), 'HELLO_OK')
    assert.equal(frameTypeName(99), 'type 99')
  })
})
