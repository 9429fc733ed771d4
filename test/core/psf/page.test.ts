// Tests of src/core/psf/page.ts: the page codec against a hand-written page, round trips,
// every byte flipped, every wrong length, and pages of the wrong region or number.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {PAGE_PAYLOAD_SIZE, PAGE_SIZE, Region, type RegionId} from '../../../src/core/psf/layout.js'
import {decodePage, encodePage} from '../../../src/core/psf/page.js'

// crc32 (of bytes 4..4095, computed with Python's zlib), region 1, reserved, page 2, payload ff 0f, zeros.
function golden(): Buffer {
  const page = Buffer.alloc(PAGE_SIZE)
  Buffer.from('04d03b13' + '01' + '000000' + '02000000' + 'ff0f', 'hex').copy(page)
  return page
}

const regionArb = fc.constantFrom<RegionId>(Region.ACTIVE, Region.INFLIGHT, Region.INDEX)

describe('psf page codec', () => {
  it('encodes the golden page to the hand-written bytes', () => {
    assert.deepEqual(encodePage(Region.ACTIVE, 2, Buffer.from([0xff, 0x0f])), golden())
  })

  it('decodes the hand-written page to its whole payload', () => {
    const payload = decodePage(golden(), Region.ACTIVE, 2)
    assert.ok(payload)
    assert.equal(payload.length, PAGE_PAYLOAD_SIZE)
    assert.deepEqual(payload.subarray(0, 3), Buffer.from([0xff, 0x0f, 0]))
    assert.ok(payload.subarray(2).every((b) => b === 0))
  })

  it('round-trips any payload up to the page payload size', () => {
    fc.assert(
      fc.property(regionArb, fc.integer({min: 0, max: 0xffffffff}), fc.uint8Array({maxLength: PAGE_PAYLOAD_SIZE}), (region, no, payload) => {
        const page = encodePage(region, no, payload)
        assert.equal(page.length, PAGE_SIZE)
        const back = decodePage(page, region, no)
        assert.ok(back)
        assert.deepEqual(back.subarray(0, payload.length), Buffer.from(payload))
        assert.ok(back.subarray(payload.length).every((b) => b === 0))
      }),
      {numRuns: 200},
    )
  })

  it('rejects every single flipped byte', () => {
    for (let i = 0; i < PAGE_SIZE; i++) {
      const page = golden()
      page[i] ^= 1 << (i % 8)
      assert.equal(decodePage(page, Region.ACTIVE, 2), undefined, `byte ${i}`)
    }
  })

  it('rejects a page of any other length (cut at every byte, or one byte long)', () => {
    const page = golden()
    for (let n = 0; n < PAGE_SIZE; n++) assert.equal(decodePage(page.subarray(0, n), Region.ACTIVE, 2), undefined, `length ${n}`)
    assert.equal(decodePage(Buffer.concat([page, Buffer.alloc(1)]), Region.ACTIVE, 2), undefined)
  })

  it('rejects a good page read at the wrong region or page number', () => {
    assert.equal(decodePage(golden(), Region.INFLIGHT, 2), undefined)
    assert.equal(decodePage(golden(), Region.INDEX, 2), undefined)
    assert.equal(decodePage(golden(), Region.ACTIVE, 1), undefined)
    assert.equal(decodePage(golden(), Region.ACTIVE, 2 + 2 ** 32), undefined)
  })

  it('rejects an all-zero page (a hole in a sparse file)', () => {
    assert.equal(decodePage(Buffer.alloc(PAGE_SIZE), Region.ACTIVE, 0), undefined)
  })

  it('refuses to encode a payload larger than a page holds', () => {
    assert.throws(() => encodePage(Region.INDEX, 0, new Uint8Array(PAGE_PAYLOAD_SIZE + 1)), RangeError)
  })
})
