// Request decoding, validation and reply encoding against hand-written bytes.

import assert from 'node:assert/strict'
import * as T from '../../../../src/core/tracker/nbd/transmission.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const H = hex('0102030405060708')
const limits: T.RequestLimits = {size: 1 << 20, maxPayload: 32 << 20, readOnly: false, blockStatus: true}

function req(type: number, offset: bigint, length: number, flags = 0): T.NbdRequest {
  return {type, offset, length, flags, handle: H}
}

describe('nbd transmission: requests', () => {
  it('parses a request header field by field', () => {
    const r = T.parseRequest(hex('25609513 0001 0006 0102030405060708 0000000100000200 00001000'))
    assert.deepEqual(r, {flags: 1, type: 6, handle: H, offset: 0x100000200n, length: 0x1000})
  })

  it('returns null on a bad magic, whatever byte is flipped', () => {
    const good = hex('25609513 0000 0000 0102030405060708 0000000000000000 00000200')
    for (let i = 0; i < 4; i++) {
      const bad = Buffer.from(good)
      bad[i] ^= 0x40
      assert.equal(T.parseRequest(bad), null)
    }
  })

  it('accepts valid requests', () => {
    assert.equal(T.validateRequest(req(0, 0n, 512), limits), null)
    assert.equal(T.validateRequest(req(1, BigInt((1 << 20) - 1), 1, 1), limits), null)
    assert.equal(T.validateRequest(req(6, 0n, 1 << 20, 3), limits), null)
    assert.equal(T.validateRequest(req(7, 0n, 4096, 8), limits), null)
    assert.equal(T.validateRequest(req(3, 0n, 0), limits), null)
  })

  const cases: Array<[string, T.NbdRequest, Partial<T.RequestLimits>, number, RegExp]> = [
    ['unknown command', req(9, 0n, 1), {}, 22, /unsupported command 9/],
    ['cache is not offered', req(5, 0n, 1), {}, 22, /cache/],
    ['NO_HOLE on a write', req(1, 0n, 1, 2), {}, 22, /flags 0x2 are not valid for write/],
    ['DF on a read (not advertised)', req(0, 0n, 1, 4), {}, 22, /flags 0x4/],
    ['unknown flag bit', req(0, 0n, 1, 0x80), {}, 22, /flags 0x80/],
    ['flush with a length', req(3, 0n, 5), {}, 22, /flush must have offset and length 0/],
    ['zero-length read', req(0, 0n, 0), {}, 22, /length 0/],
    ['read over the payload cap', req(0, 0n, (32 << 20) + 1), {size: 1 << 30}, 22, /over the 33554432-byte limit/],
    ['read past the end', req(0, BigInt(1 << 20), 1), {}, 22, /beyond the end of the export/],
    ['read at offset 2^64-1', req(0, 0xffffffffffffffffn, 1), {}, 22, /beyond the end/],
    ['write past the end', req(1, BigInt((1 << 20) - 1), 2), {}, 28, /beyond the end/],
    ['trim past the end', req(4, 0n, (1 << 20) + 1), {}, 28, /beyond the end/],
    ['write-zeroes past the end', req(6, 1n << 40n, 1), {}, 28, /beyond the end/],
    ['block-status past the end', req(7, 0n, (1 << 20) + 1), {}, 22, /beyond the end/],
    ['block-status without base:allocation', req(7, 0n, 1), {blockStatus: false}, 22, /base:allocation/],
    ['write to a read-only export', req(1, 0n, 1), {readOnly: true}, 1, /read-only/],
  ]
  for (const [what, r, lim, error, message] of cases) {
    it(`refuses ${what} with error ${error}`, () => {
      const got = T.validateRequest(r, {...limits, ...lim})
      assert.ok(got, 'expected an error')
      assert.equal(got.error, error)
      assert.match(got.message, message)
    })
  }
})

describe('nbd transmission: replies', () => {
  it('encodes a simple reply', () => {
    assert.equal(T.encodeSimpleReply(H, 22).toString('hex'), '67446698' + '00000016' + '0102030405060708')
  })

  it('encodes the header of a final OFFSET_DATA chunk', () => {
    assert.equal(T.encodeOffsetDataHeader(H, 0x1234, 16).toString('hex'), '668e33ef' + '0001' + '0001' + '0102030405060708' + '00000018' + '0000000000001234')
  })

  it('encodes an error chunk with its message', () => {
    assert.equal(
      T.encodeErrorChunk(H, 5, 'bad').toString('hex'),
      '668e33ef' + '0001' + '8001' + '0102030405060708' + '00000009' + '00000005' + '0003' + '626164',
    )
  })

  it('cuts an error message to 4096 bytes', () => {
    const b = T.encodeErrorChunk(H, 5, 'x'.repeat(5000))
    assert.equal(b.readUInt32BE(16), 6 + 4096)
    assert.equal(b.length, 20 + 6 + 4096)
  })

  it('encodes a BLOCK_STATUS chunk', () => {
    assert.equal(
      T.encodeBlockStatusChunk(H, 1, [
        [512, 0],
        [1024, 3],
      ]).toString('hex'),
      '668e33ef' + '0001' + '0005' + '0102030405060708' + '00000014' + '00000001' + '00000200' + '00000000' + '00000400' + '00000003',
    )
  })
})

describe('nbd transmission: extents to descriptors', () => {
  const d = (hole: boolean, zero: boolean, length: number) => ({length, hole, zero})

  it('merges equal neighbours, drops empty extents and clips to the request', () => {
    const got = T.extentsToDescriptors([d(false, false, 100), d(false, false, 0), d(false, false, 50), d(true, true, 1000)], 400, false)
    assert.deepEqual(got, [
      [150, 0],
      [250, 3],
    ])
  })

  it('sends one descriptor with REQ_ONE', () => {
    assert.deepEqual(T.extentsToDescriptors([d(false, false, 10), d(true, true, 10)], 20, true), [[10, 0]])
  })

  it('returns null when the backend gave nothing usable', () => {
    assert.equal(T.extentsToDescriptors([], 10, false), null)
    assert.equal(T.extentsToDescriptors([d(false, false, 0)], 10, false), null)
  })

  it('caps the number of descriptors', () => {
    const many = Array.from({length: 5000}, (_, i) => d(i % 2 === 0, i % 2 === 0, 1))
    const got = T.extentsToDescriptors(many, 5000, false)
    assert.equal(got?.length, 1024)
  })
})
