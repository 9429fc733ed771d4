// Tests of src/core/protocol/messages.ts: each encode/decode pair against hand-written
// bytes, round trips, every byte flipped, every truncation, trailing bytes, and the limits
// (counts, string lengths, 64-bit values, block kinds).
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {ProtocolError} from '../../../src/core/errors.js'
import * as m from '../../../src/core/protocol/messages.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const fill = (byte: number, n = 32) => Buffer.alloc(n, byte)
const malformed = (field?: RegExp) => (e: unknown) => e instanceof ProtocolError && e.code === 'FRAME_MALFORMED' && (!field || field.test(e.message))
const ID = '00112233445566778899aabbccddeeff'
const LAST = 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf'
const NEXT = 'f0e0d0c0b0a090807060504030201000'

interface Case {
  name: string
  bytes: string
  value: unknown
  encode(v: never): Buffer
  decode(b: Buffer): unknown
  /** DATA carries the block after its fields: any tail is data. */
  tailIsData?: boolean
  arb: fc.Arbitrary<unknown>
}

const u64 = fc.maxSafeNat()
const bytesN = (n: number) => fc.uint8Array({minLength: n, maxLength: n}).map((u) => Buffer.from(u))
const text = (max: number) => fc.string({unit: 'binary', maxLength: max}).filter((s) => Buffer.byteLength(s) <= max)
const rec = <T>(model: {[K in keyof T]: fc.Arbitrary<T[K]>}) => fc.record(model, {noNullPrototype: true}) as fc.Arbitrary<unknown>

const CASES: Case[] = [
  {
    name: 'HELLO',
    bytes: `0100 02 02 00000100 0000100000000000 ${ID} 05000000 ${LAST} ${NEXT} 0700 612f622e696d67`,
    value: {
      version: 1,
      mode: 2,
      hashAlgo: 2,
      blockSize: 65536,
      diskSize: 1 << 20,
      replicaId: hex(ID),
      flags: 5,
      lastCommit: hex(LAST),
      nextCommit: hex(NEXT),
      path: 'a/b.img',
    },
    encode: m.encodeHello,
    decode: m.decodeHello,
    arb: rec<m.Hello>({
      version: fc.integer({min: 0, max: 0xffff}),
      mode: fc.integer({min: 0, max: 255}),
      hashAlgo: fc.integer({min: 0, max: 255}),
      blockSize: fc.integer({min: 0, max: 0xffffffff}),
      diskSize: u64,
      replicaId: bytesN(16),
      // COMPRESS adds the codec list: its own golden and round trip are in compressed-data.test.ts.
      flags: fc.integer({min: 0, max: 0xffffffff}).map((f) => (f & ~m.HelloFlag.COMPRESS) >>> 0),
      lastCommit: bytesN(16),
      nextCommit: bytesN(16),
      path: text(m.MAX_PATH),
    }),
  },
  {
    name: 'HELLO_OK',
    bytes: `0100 01 0000100000000000 0500000000000000 ${ID} 0300000000000000 2a00000000000000`,
    value: {version: 1, state: 1, replicaSize: 1 << 20, resumeBlock: 5, replicaId: hex(ID), generation: 3, lastSeq: 42},
    encode: m.encodeHelloOk,
    decode: m.decodeHelloOk,
    arb: rec<m.HelloOk>({
      version: fc.integer({min: 0, max: 0xffff}),
      state: fc.integer({min: 0, max: 255}),
      replicaSize: u64,
      resumeBlock: u64,
      replicaId: bytesN(16),
      generation: u64,
      lastSeq: u64,
    }),
  },
  {
    name: 'ERROR',
    bytes: '0400 0400 46554c4c 0300 776879 0000',
    value: {exitCode: 4, code: 'FULL', message: 'why', hint: ''},
    encode: m.encodeError,
    decode: m.decodeError,
    arb: rec<m.ErrorMsg>({exitCode: fc.integer({min: 0, max: 0xffff}), code: text(64), message: text(2048), hint: text(1024)}),
  },
  {
    name: 'BLOCK_STATUS',
    bytes: `0001000000000000 03000000 000102 ${'aa'.repeat(32)}`,
    value: {startBlock: 256, kinds: hex('000102'), hashes: fill(0xaa)},
    encode: m.encodeBlockStatus,
    decode: m.decodeBlockStatus,
    arb: fc
      .tuple(u64, fc.array(fc.constantFrom(0, 1, 2), {minLength: 1, maxLength: m.MAX_STATUS_BATCH}))
      .chain(([startBlock, kinds]) => bytesN(32 * kinds.filter((k) => k === 1).length).map((hashes) => ({startBlock, kinds: Buffer.from(kinds), hashes}))),
  },
  {
    name: 'DATA',
    bytes: `0700000000000000 ${'bb'.repeat(32)} deadbeef`,
    value: {block: 7, hash: fill(0xbb), data: hex('deadbeef')},
    encode: (v: {block: number; hash: Buffer; data: Buffer}) => Buffer.concat([m.encodeDataFields(v.block, v.hash), v.data]),
    decode: m.decodeData,
    tailIsData: true,
    arb: rec({block: u64, hash: bytesN(32), data: fc.uint8Array({maxLength: 300}).map((u) => Buffer.from(u))}),
  },
  {
    name: 'CHECKPOINT (range)',
    bytes: '0a00000000000000 1400000000000000',
    value: {start: 10, count: 20},
    encode: (v: {start: number; count: number}) => m.encodeRange(v.start, v.count),
    decode: (b) => m.decodeRange(b, 'CHECKPOINT'),
    arb: rec({start: u64, count: u64}),
  },
  {
    name: 'CHECKPOINT_ACK (u64)',
    bytes: 'ffffffffffff1f00',
    value: Number.MAX_SAFE_INTEGER,
    encode: m.encodeU64,
    decode: (b) => m.decodeU64(b, 'CHECKPOINT_ACK'),
    arb: u64,
  },
  {
    name: 'DONE',
    bytes: `1000000000000000 ${'cc'.repeat(32)}`,
    value: {blockCount: 16, digest: fill(0xcc)},
    encode: m.encodeDone,
    decode: m.decodeDone,
    arb: rec<m.Done>({blockCount: u64, digest: bytesN(32)}),
  },
  {
    name: 'VERIFY_RESULT',
    bytes: `01 ${'dd'.repeat(32)}`,
    value: {ok: true, digest: fill(0xdd)},
    encode: m.encodeVerifyResult,
    decode: m.decodeVerifyResult,
    arb: rec<m.VerifyResult>({ok: fc.boolean(), digest: bytesN(32)}),
  },
  {
    name: 'BUNDLE_BEGIN',
    bytes: '0500000000000000 0300000000000000 0000100000000000',
    value: {seq: 5, blockCount: 3, diskSize: 1 << 20},
    encode: m.encodeBundleBegin,
    decode: m.decodeBundleBegin,
    arb: rec<m.BundleBegin>({seq: u64, blockCount: u64, diskSize: u64}),
  },
  {
    name: 'BUNDLE_END',
    bytes: `0500000000000000 0300000000000000 ${'ee'.repeat(32)}`,
    value: {seq: 5, blockCount: 3, digest: fill(0xee)},
    encode: m.encodeBundleEnd,
    decode: m.decodeBundleEnd,
    arb: rec<m.BundleEnd>({seq: u64, blockCount: u64, digest: bytesN(32)}),
  },
  {
    name: 'COMMITTED',
    bytes: '0500000000000000 0c000000 2c010000',
    value: {seq: 5, journalMs: 12, applyMs: 300},
    encode: m.encodeCommitted,
    decode: m.decodeCommitted,
    arb: rec<m.Committed>({seq: u64, journalMs: fc.integer({min: 0, max: 0xffffffff}), applyMs: fc.integer({min: 0, max: 0xffffffff})}),
  },
]

/** Buffers compare with Uint8Arrays by content. */
const norm = (v: unknown): unknown =>
  v instanceof Uint8Array
    ? Buffer.from(v).toString('hex')
    : v && typeof v === 'object'
      ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]))
      : v

for (const c of CASES) {
  describe(`${c.name} message codec`, () => {
    const golden = hex(c.bytes)

    it('encodes to the hand-written bytes', () => {
      assert.deepEqual(c.encode(c.value as never), golden)
    })

    it('decodes the hand-written bytes', () => {
      assert.deepEqual(norm(c.decode(golden)), norm(c.value))
    })

    it('round-trips any value', () => {
      fc.assert(
        fc.property(c.arb, (v) => assert.deepEqual(norm(c.decode(c.encode(v as never))), norm(v))),
        {numRuns: 200},
      )
    })

    it('detects every single flipped byte: FRAME_MALFORMED or a different value', () => {
      for (let i = 0; i < golden.length; i++) {
        const b = Buffer.from(golden)
        b[i] ^= 0xff
        try {
          assert.notDeepEqual(norm(c.decode(b)), norm(c.value), `byte ${i}`)
        } catch (e) {
          if (!malformed()(e)) throw e
        }
      }
    })

    it('rejects the bytes cut at every length with FRAME_MALFORMED', () => {
      const fields = c.tailIsData ? m.DATA_FIELDS_SIZE : golden.length
      for (let n = 0; n < fields; n++) assert.throws(() => c.decode(golden.subarray(0, n)), malformed(), `length ${n}`)
    })

    if (!c.tailIsData) {
      it('rejects trailing bytes with FRAME_MALFORMED', () => {
        assert.throws(() => c.decode(Buffer.concat([golden, hex('00')])), malformed(/trailing/))
      })
    }
  })
}

describe('message limits', () => {
  const status = (count: string, kinds: string, hashes = '') => hex(`0000000000000000 ${count} ${kinds} ${hashes}`)

  it('BLOCK_STATUS: refuses a count of 0 or past MAX_STATUS_BATCH before reading the kinds', () => {
    assert.equal(m.MAX_STATUS_BATCH, 1024)
    for (const count of ['00000000', '01040000', 'ffffffff']) assert.throws(() => m.decodeBlockStatus(status(count, '')), malformed(/count/))
    assert.equal(m.decodeBlockStatus(status('00040000', '00'.repeat(1024))).kinds.length, 1024)
  })

  it('BLOCK_STATUS: refuses an unknown block kind', () => {
    for (const k of ['03', '80', 'ff']) assert.throws(() => m.decodeBlockStatus(status('02000000', `00${k}`)), malformed(/kind/))
  })

  it('BLOCK_STATUS: needs one hash per HASH entry, no more', () => {
    assert.throws(() => m.decodeBlockStatus(status('02000000', '0101', 'aa'.repeat(32))), malformed(/hashes/))
    assert.throws(() => m.decodeBlockStatus(status('01000000', '00', 'aa'.repeat(32))), malformed(/trailing/))
  })

  it('HELLO: refuses a path past MAX_PATH, and a length claiming more than is there', () => {
    const head = `0100 01 01 00100000 0000000000000000 ${ID} 00000000 ${LAST} ${NEXT}`
    assert.equal(m.decodeHello(hex(`${head} 0010 ${'61'.repeat(4096)}`)).path.length, 4096)
    assert.throws(() => m.decodeHello(hex(`${head} 0110 ${'61'.repeat(4097)}`)), malformed(/path/))
    assert.throws(() => m.decodeHello(hex(`${head} 0a00 6161`)), malformed(/path/))
  })

  it('refuses 64-bit values past 2^53 (HELLO disk size, CHECKPOINT count, DONE block count)', () => {
    assert.throws(() => m.decodeHello(hex(`0100 01 01 00100000 0000000000002000 ${ID} 00000000 0000`)), malformed(/disk size/))
    assert.throws(() => m.decodeRange(hex('0000000000000000 ffffffffffffffff'), 'CHECKPOINT'), malformed(/count/))
    assert.throws(() => m.decodeDone(hex(`0000000000002000 ${'00'.repeat(32)}`)), malformed(/block count/))
  })

  it('ERROR: refuses a code past 64 bytes and a message past 4096', () => {
    assert.throws(() => m.decodeError(hex(`0100 4100 ${'41'.repeat(65)} 0000 0000`)), malformed(/code/))
    assert.throws(() => m.decodeError(hex(`0100 0000 0110 ${'41'.repeat(4097)} 0000`)), malformed(/message/))
  })

  it('ERROR: clips long fields on encode at a character boundary, so the frame always decodes', () => {
    const e = m.decodeError(m.encodeError({exitCode: 1, code: `${'A'.repeat(63)}é`, message: 'ü'.repeat(3000), hint: '€'.repeat(1000)}))
    assert.equal(e.code, 'A'.repeat(63))
    assert.equal(e.message, 'ü'.repeat(1024))
    assert.equal(e.hint, '€'.repeat(341))
  })

  it('VERIFY_RESULT: refuses an ok byte other than 0 or 1', () => {
    assert.throws(() => m.decodeVerifyResult(hex(`02 ${'00'.repeat(32)}`)), malformed(/ok/))
  })

  it('COMMITTED: rounds timings and clamps them to 32 bits on encode', () => {
    assert.deepEqual(m.encodeCommitted({seq: 1, journalMs: 1.6, applyMs: 2 ** 40}), hex('0100000000000000 02000000 ffffffff'))
  })

  it('BUNDLE_BEGIN and BUNDLE_END: refuse a sequence past 2^53', () => {
    assert.throws(() => m.decodeBundleBegin(hex('0000000000002000 0000000000000000 0000000000000000')), malformed(/sequence/))
    assert.throws(() => m.decodeBundleEnd(hex(`0000000000000000 ffffffffffffffff ${'00'.repeat(32)}`)), malformed(/block count/))
  })

  it('DATA: a frame with its fields and no data decodes to an empty block', () => {
    assert.equal(m.decodeData(hex(`0000000000000000 ${'00'.repeat(32)}`)).data.length, 0)
  })
})
