// The control-socket frame codec, against bytes written by hand.
import assert from 'node:assert/strict'
import {CONTROL_HEADER_SIZE, decodeHeader, decodeJson, encodeFrame, FrameKind, MAX_JSON, parseError, parseRequest} from '../../../src/core/tracker/control-protocol.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
// "VDTC", version 1, REQUEST, reserved 0, json length 15, data length 0, {"op":"status"}
const STATUS_REQUEST = hex('56445443 01 01 0000 0f000000 00000000 7b226f70223a22737461747573227d')

describe('tracker control protocol', () => {
  it('encodes a request exactly as the spec says', () => {
    assert.deepEqual(Buffer.concat(encodeFrame(FrameKind.REQUEST, {op: 'status'})), STATUS_REQUEST)
  })

  it('encodes a reply with data as header+JSON, then the data untouched', () => {
    const data = Buffer.from([1, 2, 3])
    const parts = encodeFrame(FrameKind.REPLY, {a: 1}, data)
    assert.equal(parts.length, 3)
    assert.deepEqual(parts[0], hex('56445443 01 02 0000 07000000 03000000'))
    assert.equal(parts[1].toString(), '{"a":1}')
    assert.equal(parts[2], data)
  })

  it('decodes the golden request', () => {
    const h = decodeHeader(STATUS_REQUEST.subarray(0, CONTROL_HEADER_SIZE), 'client')
    assert.deepEqual(h, {version: 1, kind: FrameKind.REQUEST, jsonLength: 15, dataLength: 0})
    assert.deepEqual(parseRequest(decodeJson(STATUS_REQUEST.subarray(16))), {op: 'status'})
  })

  it('refuses every header that breaks a rule, naming it', () => {
    const cases: Array<[string, 'client' | 'tracker', RegExp]> = [
      ['58585858 01 01 0000 0f000000 00000000', 'client', /CONTROL_BAD_MAGIC|bad magic/],
      ['56445443 02 01 0000 0f000000 00000000', 'client', /version 2 is not supported/],
      ['56445443 01 02 0000 0f000000 00000000', 'client', /kind 2 is not expected from the client/],
      ['56445443 01 01 0000 0f000000 00000000', 'tracker', /kind 1 is not expected from the tracker/],
      ['56445443 01 01 0100 0f000000 00000000', 'client', /reserved/],
      ['56445443 01 01 0000 00000000 00000000', 'client', /JSON length 0/],
      ['56445443 01 01 0000 01000100 00000000', 'client', /JSON length 65537/],
      ['56445443 01 01 0000 ffffffff 00000000', 'client', /JSON length 4294967295/],
      ['56445443 01 01 0000 0f000000 01000000', 'client', /data length 1 exceeds 0/],
      ['56445443 01 02 0000 0f000000 01000010', 'tracker', /data length 268435457 exceeds/],
    ]
    for (const [h, from, re] of cases) assert.throws(() => decodeHeader(hex(h), from), re, h)
    assert.throws(() => decodeHeader(hex('56445443'), 'client'), /needs 16 bytes/)
  })

  it('a flipped byte anywhere in the golden header is refused or decodes to something else, never crashes', () => {
    const good = STATUS_REQUEST.subarray(0, CONTROL_HEADER_SIZE)
    for (let i = 0; i < CONTROL_HEADER_SIZE; i++) {
      for (const bit of [0x01, 0x80]) {
        const b = Buffer.from(good)
        b[i] ^= bit
        try {
          const h = decodeHeader(b, 'client')
          // Only the JSON length may change and still pass (its low bytes).
          assert.ok(i >= 8 && i < 12, `byte ${i} flipped and still accepted`)
          assert.ok(h.jsonLength >= 2 && h.jsonLength <= MAX_JSON)
        } catch (err) {
          assert.equal((err as {name: string}).name, 'ProtocolError', String(err))
        }
      }
    }
  })

  it('validates requests field by field', () => {
    assert.deepEqual(parseRequest({op: 'freeze'}), {op: 'freeze', preserve: true})
    assert.deepEqual(parseRequest({op: 'freeze', preserve: false}), {op: 'freeze', preserve: false})
    assert.throws(() => parseRequest({op: 'freeze', preserve: 0}), /"preserve" must be true or false/)
    assert.deepEqual(parseRequest({op: 'read', first: 0, count: 3}), {op: 'read', first: 0, count: 3})
    assert.deepEqual(parseRequest({op: 'complete', ok: false}), {op: 'complete', ok: false})
    assert.throws(() => parseRequest({op: 'read', first: -1, count: 1}), /"first" must be a non-negative integer/)
    assert.throws(() => parseRequest({op: 'read', first: 1.5, count: 1}), /"first"/)
    assert.throws(() => parseRequest({op: 'read', first: 0, count: 0}), /"count" must be a positive integer/)
    assert.throws(() => parseRequest({op: 'read', first: 0, count: 2 ** 60}), /"count"/)
    assert.throws(() => parseRequest({op: 'complete', ok: 'yes'}), /"ok" must be true or false/)
    assert.throws(() => parseRequest({op: 'drop tables'}), /unknown operation "drop tables"/)
    assert.throws(() => parseRequest({}), /unknown operation undefined/)
    assert.throws(() => decodeJson(Buffer.from('[1,2]')), /not a JSON object/)
    assert.throws(() => decodeJson(Buffer.from('{"a":')), /not valid JSON/)
    assert.throws(() => decodeJson(Buffer.from('null')), /not a JSON object/)
  })

  it('reads error bodies defensively', () => {
    assert.deepEqual(parseError({code: 'X', exitCode: 3, message: 'm', hint: 'h'}), {code: 'X', exitCode: 3, message: 'm', hint: 'h'})
    const e = parseError({exitCode: 999, message: 5})
    assert.equal(e.code, 'TRACKER_ERROR')
    assert.equal(e.exitCode, 1)
    assert.match(e.message, /without a message/)
  })
})
