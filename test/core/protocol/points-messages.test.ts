// The restore-point query's two frames: golden bytes written by hand (never by the encoder
// under test), round trips, every truncation and every flipped byte either refused or decoded
// to something the checks allow, and hostile counts refused before anything is read for them.
import assert from 'node:assert/strict'
import {ProtocolError} from '../../../src/core/errors.js'
import {
  decodePointsList,
  decodePointsRequest,
  encodePointsList,
  encodePointsRequest,
  MAX_POINTS_LIST,
  PointsOp,
  type PointsList,
} from '../../../src/core/protocol/points-messages.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const refused = (fn: () => unknown) => assert.throws(fn, (e: unknown) => e instanceof ProtocolError && e.code === 'FRAME_MALFORMED')

// op 2, retention "count:2" (7 bytes)
const REQUEST = hex('02 0700 636f756e743a32')

// lastSeq 2, totalBytes 0x1000, omitted 0, retention "off", untrusted "", problem "",
// dropped [0], 2 points: {seq 2, t 1000, bytes 0, disk 0x10000, tested 0, current},
// {seq 1, t 500, bytes 0x1000, disk 0x10000, test 800..900, -}
const LIST = hex(`
  0200000000000000 0010000000000000 00000000
  0300 6f6666  0000  0000
  01000000 0000000000000000
  02000000
  0200000000000000 e803000000000000 0000000000000000 0000010000000000 0000000000000000 0000000000000000 01
  0100000000000000 f401000000000000 0010000000000000 0000010000000000 2003000000000000 8403000000000000 00
`)
const LIST_VALUE: PointsList = {
  lastSeq: 2,
  totalBytes: 0x1000,
  omitted: 0,
  retention: 'off',
  untrusted: '',
  problem: '',
  dropped: [0],
  points: [
    {seq: 2, timeMs: 1000, bytes: 0, diskSize: 0x10000, testStartMs: 0, testEndMs: 0, current: true},
    {seq: 1, timeMs: 500, bytes: 0x1000, diskSize: 0x10000, testStartMs: 800, testEndMs: 900, current: false},
  ],
}

describe('points query frames', () => {
  it('POINTS_REQUEST: golden bytes both ways', () => {
    assert.deepEqual(decodePointsRequest(REQUEST), {op: PointsOp.SET_RETENTION, retention: 'count:2'})
    assert.ok(encodePointsRequest({op: PointsOp.SET_RETENTION, retention: 'count:2'}).equals(REQUEST))
    assert.deepEqual(decodePointsRequest(hex('01 0000')), {op: PointsOp.LIST, retention: ''})
  })

  it('POINTS_REQUEST: refuses unknown ops, a spec with LIST, an empty or oversized spec, truncation, trailing bytes', () => {
    refused(() => decodePointsRequest(hex('03 0000')))
    refused(() => decodePointsRequest(hex('00 0000')))
    refused(() => decodePointsRequest(hex('01 0100 61')))
    refused(() => decodePointsRequest(hex('02 0000')))
    refused(() => decodePointsRequest(hex('02 0100 20')))
    refused(() => decodePointsRequest(Buffer.concat([hex('02 0101'), Buffer.alloc(257, 0x61)])))
    for (let n = 0; n < REQUEST.length; n++) refused(() => decodePointsRequest(REQUEST.subarray(0, n)))
    refused(() => decodePointsRequest(Buffer.concat([REQUEST, hex('00')])))
  })

  it('POINTS_REQUEST DESCRIBE_SOURCE: golden bytes; refuses an empty disk, a NUL, RPO 0, an oversized host, trailing bytes', () => {
    // op 3, retention "off", host "h1", disk "/d", rpo 300
    const golden = hex('03 0300 6f6666 0200 6831 0200 2f64 2c010000')
    const value = {op: PointsOp.DESCRIBE_SOURCE, retention: 'off', source: {host: 'h1', disk: '/d', rpoSeconds: 300}}
    assert.deepEqual(decodePointsRequest(golden), value)
    assert.ok(encodePointsRequest(value).equals(golden))
    assert.deepEqual(decodePointsRequest(hex('03 0000 0000 0100 2f 01000000')).source, {host: '', disk: '/', rpoSeconds: 1})
    refused(() => decodePointsRequest(hex('03 0000 0000 0000 01000000')))
    refused(() => decodePointsRequest(hex('03 0000 0000 0200 2f00 01000000')))
    refused(() => decodePointsRequest(hex('03 0000 0000 0100 2f 00000000')))
    refused(() => decodePointsRequest(Buffer.concat([hex('03 0000 0001'), Buffer.alloc(256, 0x61), hex('0100 2f 01000000')])))
    refused(() => decodePointsRequest(Buffer.concat([golden, hex('00')])))
    for (let n = 0; n < golden.length; n++) refused(() => decodePointsRequest(golden.subarray(0, n)))
  })

  it('POINTS_LIST: golden bytes both ways', () => {
    assert.deepEqual(decodePointsList(LIST), LIST_VALUE)
    assert.ok(encodePointsList(LIST_VALUE).equals(LIST))
  })

  it('POINTS_LIST: every truncation and trailing bytes are refused', () => {
    for (let n = 0; n < LIST.length; n++) refused(() => decodePointsList(LIST.subarray(0, n)))
    refused(() => decodePointsList(Buffer.concat([LIST, hex('00')])))
  })

  it('POINTS_LIST: each flipped byte is refused or decodes within the rules (order, one current point first, no reserved flags)', () => {
    for (let i = 0; i < LIST.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const b = Buffer.from(LIST)
        b[i] ^= bit
        let v: PointsList
        try {
          v = decodePointsList(b)
        } catch (e) {
          assert.ok(e instanceof ProtocolError, `byte ${i}: ${String(e)}`)
          continue
        }
        for (let k = 1; k < v.points.length; k++) assert.ok(v.points[k].seq < v.points[k - 1].seq, `byte ${i}: order`)
        assert.ok(
          v.points.every((p, k) => !p.current || (k === 0 && p.seq === v.lastSeq)),
          `byte ${i}: current`,
        )
      }
    }
  })

  it('POINTS_LIST: hostile counts are refused before entries are read', () => {
    const head = hex('0200000000000000 0000000000000000 00000000 0000 0000 0000')
    // 4 billion dropped sequences announced in a frame of a few bytes
    refused(() => decodePointsList(Buffer.concat([head, hex('ffffffff'), Buffer.alloc(8)])))
    // more points than the cap, and a count the bytes do not hold
    refused(() => decodePointsList(Buffer.concat([head, hex('00000000'), hex('01000100')])))
    refused(() => decodePointsList(Buffer.concat([head, hex('00000000'), hex('02000000'), Buffer.alloc(49)])))
    // a test that ends before it starts, or has only one end
    const entry = (start: string, end: string) =>
      Buffer.concat([head, hex('00000000 01000000'), hex('0200000000000000'), Buffer.alloc(24), hex(start), hex(end), hex('00')])
    assert.equal(decodePointsList(entry('0100000000000000', '0200000000000000')).points[0].testEndMs, 2)
    refused(() => decodePointsList(entry('0200000000000000', '0100000000000000')))
    refused(() => decodePointsList(entry('0000000000000000', '0100000000000000')))
    // reserved point flags; a current point that is not the last sequence
    const one = (flags: string, seq = '0200000000000000') => Buffer.concat([head, hex('00000000 01000000'), hex(seq), Buffer.alloc(40), hex(flags)])
    assert.equal(decodePointsList(one('01')).points[0].current, true)
    refused(() => decodePointsList(one('02')))
    refused(() => decodePointsList(one('01', '0100000000000000')))
    refused(() => decodePointsList(one('00', '0300000000000000')))
  })

  it('POINTS_LIST: the largest list fits a frame; the encoder refuses more', async () => {
    const {MAX_PAYLOAD} = await import('../../../src/core/protocol/frame.js')
    const points = Array.from({length: MAX_POINTS_LIST}, (_, i) => ({
      seq: MAX_POINTS_LIST - i,
      timeMs: 1,
      bytes: 1,
      diskSize: 1,
      testStartMs: 0,
      testEndMs: 0,
      current: i === 0,
    }))
    const big = encodePointsList({...LIST_VALUE, lastSeq: MAX_POINTS_LIST, dropped: Array.from({length: MAX_POINTS_LIST}, (_, i) => i), points})
    assert.ok(big.length <= MAX_PAYLOAD, `${big.length} > ${MAX_PAYLOAD}`)
    assert.equal(decodePointsList(big).points.length, MAX_POINTS_LIST)
    assert.throws(() => encodePointsList({...LIST_VALUE, points: [...points, points[0]]}), RangeError)
  })
})
