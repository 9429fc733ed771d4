// The control-socket frame codec, against bytes written by hand.
import assert from 'node:assert/strict'
import {
  BLOCK_HASH_ENTRY,
  CONTROL_HEADER_SIZE,
  decodeBlockHashes,
  decodeHeader,
  decodeJson,
  encodeBlockHashes,
  encodeFrame,
  FrameKind,
  MAX_JSON,
  MAX_REQUEST_DATA,
  parseError,
  parseRequest,
} from '../../../src/core/tracker/control-protocol.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
// "VDTC", version 2, REQUEST, reserved 0, json length 15, data length 0, {"op":"status"}
const STATUS_REQUEST = hex('56445443 02 01 0000 0f000000 00000000 7b226f70223a22737461747573227d')

describe('tracker control protocol', () => {
  it('encodes a request exactly as the spec says', () => {
    assert.deepEqual(Buffer.concat(encodeFrame(FrameKind.REQUEST, {op: 'status'})), STATUS_REQUEST)
  })

  it('encodes a reply with data as header+JSON, then the data untouched', () => {
    const data = Buffer.from([1, 2, 3])
    const parts = encodeFrame(FrameKind.REPLY, {a: 1}, data)
    assert.equal(parts.length, 3)
    assert.deepEqual(parts[0], hex('56445443 02 02 0000 07000000 03000000'))
    assert.equal(parts[1].toString(), '{"a":1}')
    assert.equal(parts[2], data)
  })

  it('decodes the golden request', () => {
    const h = decodeHeader(STATUS_REQUEST.subarray(0, CONTROL_HEADER_SIZE), 'client')
    assert.deepEqual(h, {version: 2, kind: FrameKind.REQUEST, jsonLength: 15, dataLength: 0})
    assert.deepEqual(parseRequest(decodeJson(STATUS_REQUEST.subarray(16))), {op: 'status'})
  })

  it('refuses every header that breaks a rule, naming it', () => {
    const cases: Array<[string, 'client' | 'tracker', RegExp]> = [
      ['58585858 02 01 0000 0f000000 00000000', 'client', /CONTROL_BAD_MAGIC|bad magic/],
      ['56445443 01 01 0000 0f000000 00000000', 'client', /version 1 is not supported/],
      ['56445443 03 01 0000 0f000000 00000000', 'client', /version 3 is not supported/],
      ['56445443 02 02 0000 0f000000 00000000', 'client', /kind 2 is not expected from the client/],
      ['56445443 02 01 0000 0f000000 00000000', 'tracker', /kind 1 is not expected from the tracker/],
      ['56445443 02 01 0100 0f000000 00000000', 'client', /reserved/],
      ['56445443 02 01 0000 00000000 00000000', 'client', /JSON length 0/],
      ['56445443 02 01 0000 01000100 00000000', 'client', /JSON length 65537/],
      ['56445443 02 01 0000 ffffffff 00000000', 'client', /JSON length 4294967295/],
      ['56445443 02 01 0000 0f000000 01000001', 'client', /data length 16777217 exceeds 16777216/],
      ['56445443 02 02 0000 0f000000 01000010', 'tracker', /data length 268435457 exceeds/],
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
          // Only the lengths may change and still pass: the JSON length's low bytes, the data
          // length's (a request may carry up to MAX_REQUEST_DATA: 16 MiB, 0x01000000).
          assert.ok(i >= 8 && i < 16, `byte ${i} flipped and still accepted`)
          assert.ok(h.jsonLength >= 2 && h.jsonLength <= MAX_JSON)
          assert.ok(h.dataLength <= MAX_REQUEST_DATA)
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
    // A group cut: the hold is bounded (the VM's writes wait that long at most).
    assert.deepEqual(parseRequest({op: 'freeze', holdMs: 5000}), {op: 'freeze', preserve: true, holdMs: 5000})
    for (const holdMs of [0, -1, 1.5, 30_001, '5000', null])
      assert.throws(() => parseRequest({op: 'freeze', holdMs}), /"holdMs" must be an integer from 1 to 30000/)
    assert.deepEqual(parseRequest({op: 'release'}), {op: 'release'})
    assert.throws(() => parseRequest({op: 'release'}, 8), /takes no data/)
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

  it('validates the record transitions and the data each one takes (version 2)', () => {
    assert.deepEqual(parseRequest({op: 'beginCommit', seq: 4}), {op: 'beginCommit', seq: 4})
    assert.deepEqual(parseRequest({op: 'adoptCommitted', seq: 4}), {op: 'adoptCommitted', seq: 4})
    assert.deepEqual(parseRequest({op: 'commit', seq: 5, pointInTimeMs: 10, diskSize: 8192, commitId: 'c0ffee00c0ffee00c0ffee00c0ffee00'}), {
      op: 'commit',
      seq: 5,
      pointInTimeMs: 10,
      diskSize: 8192,
      commitId: 'c0ffee00c0ffee00c0ffee00c0ffee00',
    })
    assert.throws(() => parseRequest({op: 'commit', seq: 5, pointInTimeMs: 10, diskSize: 8192}), /commit: "commitId" must be 32 lower-case hex digits/)
    assert.throws(
      () => parseRequest({op: 'provedSync', diskSize: 1, replicaSeq: 2, syncedMs: 3, commitId: 'C0FFEE'}),
      /provedSync: "commitId" must be 32 lower-case hex digits/,
    )
    assert.deepEqual(parseRequest({op: 'beginFullSync'}), {op: 'beginFullSync'})
    assert.deepEqual(parseRequest({op: 'provedSync', diskSize: 1, replicaSeq: 2, syncedMs: 3, commitId: 'c0ffee00c0ffee00c0ffee00c0ffee00'}), {
      op: 'provedSync',
      diskSize: 1,
      replicaSeq: 2,
      syncedMs: 3,
      commitId: 'c0ffee00c0ffee00c0ffee00c0ffee00',
    })
    assert.deepEqual(parseRequest({op: 'indexRun', first: 127}, 64), {op: 'indexRun', first: 127})
    assert.deepEqual(parseRequest({op: 'blockHashes'}, 2 * BLOCK_HASH_ENTRY), {op: 'blockHashes'})
    assert.throws(() => parseRequest({op: 'commit', seq: 5, pointInTimeMs: -1, diskSize: 8192}), /commit: "pointInTimeMs" must be a non-negative integer/)
    assert.throws(() => parseRequest({op: 'beginCommit'}), /beginCommit: "seq"/)
    assert.throws(() => parseRequest({op: 'status'}, 1), /status: takes no data, got 1 bytes/)
    assert.throws(() => parseRequest({op: 'indexRun', first: 0}, 0), /indexRun: data must be a positive multiple of 32 bytes, got 0/)
    assert.throws(() => parseRequest({op: 'indexRun', first: 0}, 33), /multiple of 32/)
    assert.throws(() => parseRequest({op: 'blockHashes'}, 41), /multiple of 40/)
  })

  it("validates a settings request with the .psf's own settings rules (vdrep config)", () => {
    const settings = {target: '/r/vm.img', rpoSeconds: 300, fullsyncPort: 31031, deltaPort: 44046, group: 'vm1'}
    assert.deepEqual(parseRequest({op: 'settings', settings}), {op: 'settings', settings})
    const id = '00112233445566778899aabbccddeeff'
    assert.deepEqual(parseRequest({op: 'settings', settings, replicaId: id}), {op: 'settings', settings, replicaId: id})
    assert.throws(() => parseRequest({op: 'settings', settings, replicaId: 'AB'}), /settings: "replicaId" must be 32 lower-case hex digits/)
    assert.throws(() => parseRequest({op: 'settings'}), /CONTROL_BAD_REQUEST|settings: .*invalid object|not an object/)
    assert.throws(() => parseRequest({op: 'settings', settings: {...settings, rpoSeconds: 0}}), /settings: .*invalid rpoSeconds/)
    assert.throws(() => parseRequest({op: 'settings', settings: {...settings, deltaPort: 70000}}), /settings: .*invalid deltaPort/)
    assert.throws(() => parseRequest({op: 'settings', settings: {...settings, group: 'a b'}}), /settings: .*invalid group/)
    assert.throws(() => parseRequest({op: 'settings', settings: {...settings, preHook: 'a\nb'}}), /settings: .*invalid preHook/)
    assert.throws(() => parseRequest({op: 'settings', settings}, 8), /settings: takes no data/)
  })

  it('blockHashes data: u64 block then hash, little-endian, blocks checked against the disk', () => {
    const h1 = Buffer.alloc(32, 0xaa)
    const h2 = Buffer.alloc(32, 0xbb)
    const data = encodeBlockHashes([
      [1, h1],
      [0x0102030405, h2],
    ])
    assert.deepEqual(data.subarray(0, 8), hex('0100000000000000'))
    assert.deepEqual(data.subarray(40, 48), hex('0504030201000000'))
    const back = decodeBlockHashes(data, 0x0102030406)
    assert.deepEqual([...back.keys()], [1, 0x0102030405])
    assert.deepEqual(back.get(1), h1)
    assert.throws(() => decodeBlockHashes(data, 0x0102030405), /block 4328719365 is outside the disk's 4328719365 blocks/)
  })

  it('reads error bodies defensively', () => {
    assert.deepEqual(parseError({code: 'X', exitCode: 3, message: 'm', hint: 'h'}), {code: 'X', exitCode: 3, message: 'm', hint: 'h'})
    const e = parseError({exitCode: 999, message: 5})
    assert.equal(e.code, 'TRACKER_ERROR')
    assert.equal(e.exitCode, 1)
    assert.match(e.message, /without a message/)
  })
})
