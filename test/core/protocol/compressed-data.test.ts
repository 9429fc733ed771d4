// The compression fields on the wire, against hand-written bytes: HELLO with flag COMPRESS and
// its codec list, HELLO_OK's codec answer, DATA_Z's fields; truncation at every byte and caps.
import assert from 'node:assert/strict'
import * as m from '../../../src/core/protocol/messages.js'
import {decodeCompressedRun, encodeCompressedRunFields} from '../../../src/core/protocol/compressed-data.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const ID = '00112233445566778899aabbccddeeff'
const LAST = 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf'
const NEXT = 'f0e0d0c0b0a090807060504030201000'
const malformed = (field: RegExp) => (e: unknown) => (e as {code?: string}).code === 'FRAME_MALFORMED' && field.test((e as Error).message)

describe('compression on the wire: message fields', () => {
  const helloHex = `0100 02 02 00000100 0000100000000000 ${ID} 05010000 ${LAST} ${NEXT} 0700 612f622e696d67 02 01 07`
  const hello: m.Hello = {
    version: 1,
    mode: 2,
    hashAlgo: 2,
    blockSize: 65536,
    diskSize: 1 << 20,
    replicaId: hex(ID),
    flags: 0x105,
    lastCommit: hex(LAST),
    nextCommit: hex(NEXT),
    path: 'a/b.img',
    codecs: [1, 7],
  }

  it('HELLO with COMPRESS: the codec list follows the path (golden both ways)', () => {
    assert.deepEqual(m.encodeHello(hello), hex(helloHex))
    assert.deepEqual(m.decodeHello(hex(helloHex)), hello)
    // Without the flag the list is not written, and trailing bytes are refused as before.
    assert.throws(() => m.decodeHello(hex(helloHex.replace('05010000', '05000000'))), malformed(/trailing|HELLO/))
  })

  it('HELLO codec list: truncated at every byte, and over MAX_CODECS, is refused', () => {
    const b = hex(helloHex)
    for (let n = b.length - 3; n < b.length; n++) assert.throws(() => m.decodeHello(b.subarray(0, n)), malformed(/codec/))
    assert.throws(() => m.decodeHello(hex(helloHex.replace(/02 01 07$/, `09 ${'01'.repeat(9)}`))), malformed(/codec count/))
  })

  it('HELLO_OK: the codec byte only in answer to an offer', () => {
    const base = `0200 02 0000100000000000 0000000000000000 ${ID} 0100000000000000 0000000000000000`
    const v = {version: 2, state: 2, replicaSize: 1 << 20, resumeBlock: 0, replicaId: hex(ID), generation: 1, lastSeq: 0}
    assert.deepEqual(m.encodeHelloOk({...v, codec: 1}), hex(`${base} 01`))
    assert.deepEqual(m.decodeHelloOk(hex(`${base} 01`), true), {...v, codec: 1})
    assert.deepEqual(m.decodeHelloOk(hex(`${base} 00`), true), {...v, codec: 0})
    assert.deepEqual(m.decodeHelloOk(hex(base)), v)
    assert.throws(() => m.decodeHelloOk(hex(base), true), malformed(/codec/))
    assert.throws(() => m.decodeHelloOk(hex(`${base} 01`)), malformed(/HELLO_OK/))
  })

  const runHex = `0500000000000000 02000000 00200000 01 ${'11'.repeat(32)} ${'22'.repeat(32)} 28b52ffd`
  it('DATA_Z: golden fields, decoded in order', () => {
    const r = decodeCompressedRun(hex(runHex))
    assert.deepEqual(
      {first: r.first, count: r.count, rawLength: r.rawLength, codec: r.codec, hashes: r.hashes.toString('hex'), data: r.compressed.toString('hex')},
      {first: 5, count: 2, rawLength: 8192, codec: 1, hashes: '11'.repeat(32) + '22'.repeat(32), data: '28b52ffd'},
    )
    const fields = encodeCompressedRunFields({first: 5, count: 2, rawLength: 8192, codec: 1, hashes: r.hashes})
    assert.deepEqual(Buffer.concat([fields, hex('28b52ffd')]), hex(runHex))
  })

  it('DATA_Z: every truncation, a zero or oversized count or length, and no data are refused', () => {
    const b = hex(runHex)
    for (let n = 0; n < b.length - 4; n++) assert.throws(() => decodeCompressedRun(b.subarray(0, n)), malformed(/./))
    assert.throws(() => decodeCompressedRun(hex(runHex.replace('02000000', '00000000'))), malformed(/count/))
    assert.throws(() => decodeCompressedRun(hex(runHex.replace('02000000', '01040000'))), malformed(/count/))
    assert.throws(() => decodeCompressedRun(hex(runHex.replace('00200000', '00000000'))), malformed(/raw length/))
    assert.throws(() => decodeCompressedRun(hex(runHex.replace('00200000', '01004000'))), malformed(/raw length/))
    assert.throws(() => decodeCompressedRun(hex(runHex.replace('00200000', '04000000'))), malformed(/data/))
  })
})
