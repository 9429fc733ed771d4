// The wire codec and its bounds: round trip (property), and a decompressor that never writes
// or accepts more or less than the length it was given.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {Compressor, Decompressor, localCodecs, Codec} from '../../../src/core/compress/codec.js'
import {seededBytes, seededText} from '../../helpers/disks.js'

describe('compress/codec (zstd-napi)', () => {
  it('is available here (the optional addon is installed for the tests)', () => {
    assert.deepEqual(localCodecs(), [Codec.ZSTD])
  })

  it('round-trips any bytes at any level it is given (property)', () => {
    const c = new Compressor()
    const d = new Decompressor()
    fc.assert(
      fc.property(fc.uint8Array({minLength: 1, maxLength: 70_000}), fc.integer({min: 1, max: 19}), fc.boolean(), (bytes, level, text) => {
        const src = text ? seededText(String(bytes.length), bytes.length) : Buffer.from(bytes)
        const packed = c.compress(src, level, src.length * 2 + 64)
        assert.ok(packed)
        const out = Buffer.alloc(src.length)
        d.decompressExact(out, Buffer.from(packed), 'run')
        assert.ok(out.equals(src))
      }),
      {numRuns: 60},
    )
  })

  it('returns null when the result would not fit the limit (random data)', () => {
    const src = seededBytes('random', 1 << 16)
    assert.equal(new Compressor().compress(src, 1, src.length * 0.9), null)
  })

  it('refuses a frame that expands past the buffer, one that falls short, and garbage', () => {
    const c = new Compressor()
    const d = new Decompressor()
    const src = seededText('t', 8192)
    const packed = Buffer.from(c.compress(src, 1, src.length) as Buffer)
    assert.throws(() => d.decompressExact(Buffer.alloc(4096), packed, 'run'), {code: 'COMPRESSED_RUN_BAD'})
    assert.throws(() => d.decompressExact(Buffer.alloc(8193), packed, 'run'), /decompresses to 8192 bytes, 8193 declared/)
    assert.throws(() => d.decompressExact(Buffer.alloc(8192), seededBytes('g', 300), 'run'), {code: 'COMPRESSED_RUN_BAD'})
    // A zip bomb: 4 MiB of zeros in a few hundred bytes, declared as one 64 KiB block.
    const bomb = Buffer.from(c.compress(Buffer.alloc(4 << 20), 19, 1 << 20) as Buffer)
    assert.ok(bomb.length < 1024)
    assert.throws(() => d.decompressExact(Buffer.alloc(65536), bomb, 'run'), {code: 'COMPRESSED_RUN_BAD'})
  })
})
