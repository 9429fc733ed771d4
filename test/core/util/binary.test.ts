// Tests of src/core/util/binary.ts: the bounds-checked cursor against hand-written bytes
// (every read past the end is a typed error naming the field, never a RangeError) and the writer.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {ProtocolError, StateError} from '../../../src/core/errors.js'
import {BufferReader, BufferWriter, strByteLength} from '../../../src/core/util/binary.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const truncated = (field: string) => (e: unknown) => e instanceof ProtocolError && e.code === 'FRAME_TRUNCATED' && e.message.includes(field)

// u8 0x7f, u16 0x1234, u32 0xdeadbeef, u64 2^53-1, big64 2^64-1, bytes 'ab', str16 "hé"
const FIXTURE = '7f 3412 efbeadde ffffffffffff1f00 ffffffffffffffff 6162 0300 68c3a9'

describe('BufferReader', () => {
  it('reads little-endian fields in order from hand-written bytes', () => {
    const r = new BufferReader(hex(FIXTURE))
    assert.equal(r.u8('a'), 0x7f)
    assert.equal(r.u16('b'), 0x1234)
    assert.equal(r.u32('c'), 0xdeadbeef)
    assert.equal(r.u64('d'), Number.MAX_SAFE_INTEGER)
    assert.equal(r.big64('e'), 2n ** 64n - 1n)
    assert.deepEqual(r.bytes(2, 'f'), Buffer.from('ab'))
    assert.equal(r.offset, 25)
    assert.equal(r.str16('g', 10), 'hé')
    assert.equal(r.remaining, 0)
    r.end('h')
  })

  it('fails every read cut at every byte with a typed error naming the field', () => {
    const whole = hex(FIXTURE)
    const steps: Array<[string, (r: BufferReader) => unknown]> = [
      ['a', (r) => r.u8('a')],
      ['b', (r) => r.u16('b')],
      ['c', (r) => r.u32('c')],
      ['d', (r) => r.u64('d')],
      ['e', (r) => r.big64('e')],
      ['f', (r) => r.bytes(2, 'f')],
      ['g', (r) => r.str16('g', 10)],
    ]
    for (let n = 0; n < whole.length; n++) {
      const r = new BufferReader(whole.subarray(0, n))
      const failed = steps.find(([field, read]) => {
        try {
          read(r)
          return false
        } catch (e) {
          assert.ok(truncated(field)(e), `length ${n}: ${String(e)}`)
          return true
        }
      })
      assert.ok(failed, `length ${n} read everything`)
    }
  })

  it('refuses a u64 past 2^53 but reads it as big64', () => {
    assert.throws(() => new BufferReader(hex('0000000000002000')).u64('size'), /size: value 9007199254740992 is out of range/)
    assert.equal(new BufferReader(hex('0000000000002000')).big64('size'), 2n ** 53n)
  })

  it('refuses a string longer than its cap before reading it', () => {
    assert.throws(() => new BufferReader(hex('0b00 68656c6c6f20776f726c64')).str16('name', 10), /name: length 11 exceeds the limit of 10/)
    assert.throws(() => new BufferReader(hex('ffff')).str16('name', 0xffff), truncated('name'))
  })

  it('refuses trailing bytes at end()', () => {
    const r = new BufferReader(hex('0102'))
    r.u8('x')
    assert.throws(() => r.end('msg'), /msg: 1 unexpected trailing bytes/)
  })

  it('uses the given error factory', () => {
    const r = new BufferReader(Buffer.alloc(1), (field, detail) => new StateError('PSF_CORRUPT', `${field} ${detail}`))
    assert.throws(
      () => r.u32('len'),
      (e: unknown) => e instanceof StateError && e.code === 'PSF_CORRUPT' && /^len needs 4 bytes at offset 0, only 1 left/.test(e.message),
    )
  })

  it('never throws anything but a VdrepError on random reads of random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({maxLength: 40}), fc.array(fc.integer({min: 0, max: 6}), {maxLength: 12}), (bytes, ops) => {
        const r = new BufferReader(Buffer.from(bytes))
        try {
          for (const op of ops)
            [() => r.u8('f'), () => r.u16('f'), () => r.u32('f'), () => r.u64('f'), () => r.big64('f'), () => r.bytes(3, 'f'), () => r.str16('f', 8)][op]()
        } catch (e) {
          assert.ok(e instanceof ProtocolError, String(e))
        }
        assert.ok(r.remaining >= 0)
      }),
    )
  })
})

describe('BufferWriter', () => {
  it('writes the hand-written bytes', () => {
    const w = new BufferWriter(40)
    w.u8(0x7f)
      .u16(0x1234)
      .u32(0xdeadbeef)
      .u64(Number.MAX_SAFE_INTEGER)
      .u64(2n ** 64n - 1n)
      .bytes(Buffer.from('ab'))
      .str16('hé')
    assert.deepEqual(w.finish(), hex(FIXTURE))
    assert.equal(w.offset, 30)
  })

  it('writes a negative u32 as its unsigned bits, skips, and returns the whole buffer on request', () => {
    const w = new BufferWriter(8).u32(-1).skip(2).u8(9)
    assert.deepEqual(w.finish(), hex('ffffffff 0000 09'))
    assert.deepEqual(w.finish(true), hex('ffffffff 0000 09 00'))
  })

  it('sizes a string field as its length prefix plus UTF-8 bytes', () => {
    assert.equal(strByteLength(''), 2)
    assert.equal(strByteLength('hé'), 5)
    assert.equal(strByteLength('€'), 5)
  })
})
