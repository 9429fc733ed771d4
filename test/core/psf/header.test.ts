// Tests of src/core/psf/header.ts: the header slot codec against a hand-written fixture,
// round trips, every byte flipped, every truncation, each validated field, and pickHeader
// (two slots, torn-write fallback, foreign versus corrupt).
import assert from 'node:assert/strict'
import zlib from 'node:zlib'
import fc from 'fast-check'
import {StateError} from '../../../src/core/errors.js'
import {decodeHeader, encodeHeader, MAX_SETTINGS, pickHeader, validBlockSize, type PsfHeader} from '../../../src/core/psf/header.js'
import {IdentityKind, NO_IDENTITY} from '../../../src/core/psf/disk-identity.js'

const SETTINGS_JSON = '{"target":"/r/d.img","rpoSeconds":900,"fullsyncPort":31031,"deltaPort":44046}'

// Hand-written slots: fixed fields, identity path (v2), settings JSON, zero padding, crc32
// (computed with Python's zlib). FIXED_HEX is format 1 and FIXED_HEX_V2 format 2 (still read);
// FIXED_HEX_V3 is written.
const FIXED_HEX = [
  '5644524550505346', // magic "VDREPPSF"
  '0100',
  '0000', // version 1, reserved
  '03000000', // flags CLEAN_SHUTDOWN | INDEX_VALID
  '0700000000000000', // counter 7
  '0000000001000000', // disk size 4 GiB
  '00000100', // block size 64 KiB
  '02',
  '000000', // blake3, reserved
  '00112233445566778899aabbccddeeff', // replica id
  '0300000000000000', // generation 3
  '2a00000000000000', // last sequence 42
  '0068e5cf8b010000', // last sync 1700000000000 ms
  '0000000001000000', // source size 4 GiB
  '15cd853dfe9c9717', // source mtime 1700000000123456789 ns
  '0807060504030201', // source ctime 0x0102030405060708
  '0000000000000000', // pending sequence 0
  '00806e8774010000', // created 1600000000000 ms
  '4d000000', // settings length 77
].join('')

const IDENTITY_PATH = '/vm/d.img'
const FIXED_HEX_V2 = [
  FIXED_HEX.slice(0, 16), // magic
  '0200', // version 2
  FIXED_HEX.slice(20, 240), // reserved .. created, as in v1
  '01',
  '00',
  '0900', // identity kind file, reserved, path length 9
  '0108000000000000', // dev 0x801 (8:1)
  '3930000000000000', // ino 12345
  '4d000000', // settings length 77
].join('')

const FIXED_HEX_V3 = [
  FIXED_HEX.slice(0, 16), // magic
  '0300', // version 3
  'ea07', // activity log: 2026 extents
  FIXED_HEX_V2.slice(24, 72), // flags .. block size, as in v2
  '02', // blake3
  '16', // activity log extents of 2^22 bytes (4 MiB)
  '0000', // reserved
  FIXED_HEX_V2.slice(80), // replica id .. settings length, as in v2
].join('')

/** The format-1 slot (no identity). */
function goldenV1(): Buffer {
  const slot = Buffer.alloc(4096)
  Buffer.from(FIXED_HEX, 'hex').copy(slot, 0)
  Buffer.from(SETTINGS_JSON, 'ascii').copy(slot, 124)
  Buffer.from('b9ea4dc7', 'hex').copy(slot, 4092)
  return slot
}

/** The format-2 slot (no activity log). */
function goldenV2(): Buffer {
  const slot = Buffer.alloc(4096)
  Buffer.from(FIXED_HEX_V2, 'hex').copy(slot, 0)
  Buffer.from(IDENTITY_PATH, 'ascii').copy(slot, 144)
  Buffer.from(SETTINGS_JSON, 'ascii').copy(slot, 153)
  Buffer.from('9b082cf1', 'hex').copy(slot, 4092)
  return slot
}

function golden(): Buffer {
  const slot = Buffer.alloc(4096)
  Buffer.from(FIXED_HEX_V3, 'hex').copy(slot, 0)
  Buffer.from(IDENTITY_PATH, 'ascii').copy(slot, 144)
  Buffer.from(SETTINGS_JSON, 'ascii').copy(slot, 153)
  Buffer.from('73ad77f6', 'hex').copy(slot, 4092)
  return slot
}

function goldenHeader(): PsfHeader {
  return {
    flags: 3,
    counter: 7n,
    diskSize: 4 * 2 ** 30,
    blockSize: 65536,
    hashAlgo: 2,
    replicaId: Buffer.from('00112233445566778899aabbccddeeff', 'hex'),
    generation: 3,
    lastSeq: 42,
    lastSyncMs: 1700000000000,
    sourceSize: 4 * 2 ** 30,
    sourceMtimeNs: 1700000000123456789n,
    sourceCtimeNs: 0x0102030405060708n,
    pendingSeq: 0,
    createdMs: 1600000000000,
    identity: {kind: IdentityKind.FILE, dev: 0x801n, ino: 12345n, path: IDENTITY_PATH},
    settings: {target: '/r/d.img', rpoSeconds: 900, fullsyncPort: 31031, deltaPort: 44046},
    lastCommit: Buffer.alloc(16),
    alExtents: 2026,
    alExtentShift: 22,
  }
}

/** What a format 1 or 2 slot decodes to: no activity log. */
const NO_LOG = {alExtents: 0, alExtentShift: 0}

/** Recompute the slot crc after editing a field, so the decoder reaches the field checks. */
function fixCrc(slot: Buffer): Buffer {
  slot.writeUInt32LE(zlib.crc32(slot.subarray(0, 4092)), 4092)
  return slot
}

function withSettings(json: string): Buffer {
  const slot = golden()
  slot.fill(0, 120, 4092)
  slot.writeUInt8(IdentityKind.NONE, 120)
  slot.writeUInt32LE(Buffer.byteLength(json), 140)
  Buffer.from(json, 'utf8').copy(slot, 144)
  return fixCrc(slot)
}

function errorOf(slot: Buffer): StateError {
  const r = decodeHeader(slot)
  assert.equal(r.ok, false)
  return (r as {error: StateError}).error
}

const headerArb: fc.Arbitrary<PsfHeader> = fc.record(
  {
    flags: fc.integer({min: 0, max: 0xffffffff}),
    counter: fc.bigInt({min: 0n, max: 2n ** 64n - 1n}),
    diskSize: fc.maxSafeNat(),
    blockSize: fc.integer({min: 12, max: 22}).map((e) => 2 ** e),
    hashAlgo: fc.constantFrom(1, 2, 3),
    replicaId: fc.uint8Array({minLength: 16, maxLength: 16}).map((u) => Buffer.from(u)),
    generation: fc.maxSafeNat(),
    lastSeq: fc.maxSafeNat(),
    lastSyncMs: fc.maxSafeNat(),
    sourceSize: fc.maxSafeNat(),
    sourceMtimeNs: fc.bigInt({min: 0n, max: 2n ** 64n - 1n}),
    sourceCtimeNs: fc.bigInt({min: 0n, max: 2n ** 64n - 1n}),
    pendingSeq: fc.maxSafeNat(),
    createdMs: fc.maxSafeNat(),
    identity: fc.oneof(
      fc.constant(NO_IDENTITY),
      fc.record(
        {
          kind: fc.constantFrom(IdentityKind.FILE, IdentityKind.BLOCK_DEVICE),
          dev: fc.bigInt({min: 0n, max: 2n ** 64n - 1n}),
          ino: fc.bigInt({min: 0n, max: 2n ** 64n - 1n}),
          path: fc.string({maxLength: 300}),
        },
        {noNullPrototype: true},
      ),
    ),
    lastCommit: fc.uint8Array({minLength: 16, maxLength: 16}).map((u) => Buffer.from(u)),
    alExtents: fc.integer({min: 1, max: 65535}),
    alExtentShift: fc.integer({min: 22, max: 30}),
    settings: fc.record(
      {
        target: fc.string({minLength: 1, maxLength: 200, unit: 'binary'}),
        rpoSeconds: fc.integer({min: 1, max: 1e9}),
        fullsyncPort: fc.integer({min: 1, max: 65535}),
        deltaPort: fc.integer({min: 1, max: 65535}),
      },
      {noNullPrototype: true},
    ),
  },
  {noNullPrototype: true},
)

describe('psf header slot codec', () => {
  it('encodes the golden header to the hand-written bytes', () => {
    assert.deepEqual(encodeHeader(goldenHeader()), golden())
  })

  it('decodes the hand-written bytes to the golden header', () => {
    assert.deepEqual(decodeHeader(golden()), {ok: true, header: goldenHeader()})
  })

  it('keeps the last commit id in bytes 4076..4091, apart from the settings (zeros in a header written before it)', () => {
    const h = {...goldenHeader(), lastCommit: Buffer.from('a0a1a2a3a4a5a6a7a8a9aaabacadaeaf', 'hex')}
    const slot = encodeHeader(h)
    assert.equal(slot.subarray(4076, 4092).toString('hex'), 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf')
    assert.deepEqual(slot.subarray(0, 4076), golden().subarray(0, 4076))
    const r = decodeHeader(slot)
    assert.ok(r.ok)
    assert.deepEqual(r.header.lastCommit, h.lastCommit)
    assert.deepEqual((decodeHeader(golden()) as {header: PsfHeader}).header.lastCommit, Buffer.alloc(16))
  })

  it('reads no commit id from a version-1 slot, whatever its bytes 4076..4091 hold (its settings could reach there)', () => {
    const slot = goldenV1()
    Buffer.alloc(16, 0x5c).copy(slot, 4076)
    slot.writeUInt32LE(zlib.crc32(slot.subarray(0, 4092)), 4092)
    const r = decodeHeader(slot)
    assert.ok(r.ok, 'the version-1 slot still decodes')
    assert.deepEqual(r.header.lastCommit, Buffer.alloc(16))
  })

  it('round-trips any header', () => {
    fc.assert(
      fc.property(headerArb, (h) => {
        const slot = encodeHeader(h)
        assert.equal(slot.length, 4096)
        assert.deepEqual(decodeHeader(slot), {ok: true, header: h})
      }),
      {numRuns: 300},
    )
  })

  it('rejects every single flipped byte: magic bytes as foreign, the rest as corrupt', () => {
    for (let i = 0; i < 4096; i++) {
      const slot = golden()
      slot[i] ^= 0xff
      const r = decodeHeader(slot)
      assert.equal(r.ok, false, `byte ${i}`)
      if (r.ok) continue
      assert.equal(r.foreign, i < 8, `byte ${i}`)
      assert.equal(r.error.code, i < 8 ? 'PSF_FOREIGN' : 'PSF_CORRUPT', `byte ${i}`)
    }
  })

  it('rejects a slot cut at every byte as corrupt', () => {
    const slot = golden()
    for (let n = 0; n < 4096; n++) {
      const r = decodeHeader(slot.subarray(0, n))
      assert.equal(r.ok, false, `length ${n}`)
      if (!r.ok) assert.equal(r.error.code, 'PSF_CORRUPT')
    }
  })

  it('decodes a format-1 slot (hand-written) with no identity', () => {
    assert.deepEqual(decodeHeader(goldenV1()), {ok: true, header: {...goldenHeader(), ...NO_LOG, identity: NO_IDENTITY}})
  })

  it('decodes a format-2 slot (hand-written) with no activity log, whatever its reserved bytes 10, 11, 37 hold', () => {
    assert.deepEqual(decodeHeader(goldenV2()), {ok: true, header: {...goldenHeader(), ...NO_LOG}})
    const slot = goldenV2()
    slot.writeUInt16LE(77, 10)
    slot.writeUInt8(9, 37)
    assert.deepEqual(decodeHeader(fixCrc(slot)), {ok: true, header: {...goldenHeader(), ...NO_LOG}})
  })

  it('refuses to encode a header with no activity log (a format 1 or 2 record is migrated first)', () => {
    assert.throws(() => encodeHeader({...goldenHeader(), ...NO_LOG}), /activity log settings/)
    assert.throws(() => encodeHeader({...goldenHeader(), alExtentShift: 12}), /activity log settings/, 'extents smaller than a block')
  })

  it('writes format 3 when a migrated format-1 header is encoded again', () => {
    const back = decodeHeader(encodeHeader({...goldenHeader(), identity: NO_IDENTITY}))
    assert.ok(back.ok)
    assert.equal(encodeHeader(back.header).readUInt16LE(8), 3)
  })

  for (const [what, edit] of [
    ['an unknown identity kind', (s: Buffer) => s.writeUInt8(3, 120)],
    ['an identity path longer than 1024 bytes', (s: Buffer) => s.writeUInt16LE(1025, 122)],
    ['identity kind none with an inode', (s: Buffer) => s.writeUInt8(0, 120)],
  ] as const) {
    it(`refuses ${what} as PSF_CORRUPT`, () => {
      const slot = golden()
      edit(slot)
      assert.equal(errorOf(fixCrc(slot)).code, 'PSF_CORRUPT')
    })
  }

  it('refuses a format-1 settings length past the slot as PSF_CORRUPT', () => {
    const slot = goldenV1()
    slot.writeUInt32LE(4092 - 124 + 1, 120)
    assert.equal(errorOf(fixCrc(slot)).code, 'PSF_CORRUPT')
  })

  it('cuts an identity path past 1024 bytes at a character boundary', () => {
    const r = decodeHeader(encodeHeader({...goldenHeader(), identity: {...goldenHeader().identity, path: '/é'.repeat(600)}}))
    assert.ok(r.ok)
    assert.ok(Buffer.byteLength(r.header.identity.path) <= 1024)
    assert.ok(!r.header.identity.path.includes('\ufffd'))
  })

  it('refuses another format version with PSF_VERSION', () => {
    const slot = golden()
    slot.writeUInt16LE(4, 8)
    assert.equal(errorOf(fixCrc(slot)).code, 'PSF_VERSION')
    assert.match(errorOf(fixCrc(slot)).message, /format version 4; this vdrep reads versions 1 to 3/)
  })

  for (const [what, edit] of [
    ['a block size that is not a power of two', (s: Buffer) => s.writeUInt32LE(3 * 4096, 32)],
    ['a block size below 4 KiB', (s: Buffer) => s.writeUInt32LE(2048, 32)],
    ['a block size above 4 MiB', (s: Buffer) => s.writeUInt32LE(8 << 20, 32)],
    ['an unknown hash algorithm', (s: Buffer) => s.writeUInt8(4, 36)],
    ['an activity log of no extents', (s: Buffer) => s.writeUInt16LE(0, 10)],
    ['activity log extents smaller than a block', (s: Buffer) => s.writeUInt8(15, 37)],
    ['activity log extents above 1 GiB', (s: Buffer) => s.writeUInt8(31, 37)],
    ['a disk size past 2^53', (s: Buffer) => s.writeBigUInt64LE(2n ** 53n, 24)],
    ['a settings length past the slot', (s: Buffer) => s.writeUInt32LE(MAX_SETTINGS + 1, 140)],
    ['a settings length past the slot beside the path', (s: Buffer) => s.writeUInt32LE(MAX_SETTINGS - 8, 140)],
    ['a settings length of 0xffffffff', (s: Buffer) => s.writeUInt32LE(0xffffffff, 140)],
  ] as const) {
    it(`refuses ${what} as PSF_CORRUPT even with a good crc`, () => {
      const slot = golden()
      edit(slot)
      const e = errorOf(fixCrc(slot))
      assert.ok(e instanceof StateError)
      assert.equal(e.code, 'PSF_CORRUPT')
    })
  }

  for (const json of [
    '{"target":',
    'null',
    '[]',
    '"x"',
    '{}',
    '{"target":"","rpoSeconds":1,"fullsyncPort":1,"deltaPort":1}',
    '{"target":"/x","rpoSeconds":0,"fullsyncPort":1,"deltaPort":1}',
    '{"target":"/x","rpoSeconds":1.5,"fullsyncPort":1,"deltaPort":1}',
    '{"target":"/x","rpoSeconds":1,"fullsyncPort":65536,"deltaPort":1}',
    '{"target":"/x","rpoSeconds":1,"fullsyncPort":1,"deltaPort":0}',
    '{"target":"/x","rpoSeconds":1,"fullsyncPort":1,"deltaPort":1,"ssh":null}',
    '{"target":"/x","rpoSeconds":1,"fullsyncPort":1,"deltaPort":1,"ssh":5}',
  ]) {
    it(`refuses settings ${json} as PSF_CORRUPT`, () => {
      assert.equal(errorOf(withSettings(json)).code, 'PSF_CORRUPT')
    })
  }

  it('accepts settings with ssh options', () => {
    const json = '{"target":"u@h:/x","rpoSeconds":60,"fullsyncPort":2,"deltaPort":3,"ssh":{"user":"u","port":22}}'
    const r = decodeHeader(withSettings(json))
    assert.ok(r.ok)
    assert.deepEqual(r.header.settings, JSON.parse(json))
  })

  it('refuses to encode settings larger than the slot holds', () => {
    const h = goldenHeader()
    h.settings = {...h.settings, target: 'x'.repeat(MAX_SETTINGS)}
    assert.throws(() => encodeHeader(h), {code: 'PSF_SETTINGS_TOO_LARGE'})
    h.settings.target = 'x'.repeat(MAX_SETTINGS - IDENTITY_PATH.length - (SETTINGS_JSON.length - '/r/d.img'.length))
    assert.equal(decodeHeader(encodeHeader(h)).ok, true)
  })

  it('validBlockSize accepts powers of two from 4 KiB to 4 MiB only', () => {
    for (let e = 12; e <= 22; e++) assert.ok(validBlockSize(2 ** e))
    for (const n of [0, 2048, 4095, 4097, 12288, 8 << 20, 4096.5, NaN, -4096]) assert.equal(validBlockSize(n), false, String(n))
  })
})

describe('pickHeader', () => {
  const withCounter = (c: bigint) => encodeHeader({...goldenHeader(), counter: c})
  const foreign = () => Buffer.alloc(4096, 0x41)
  const torn = (c: bigint) => {
    const s = withCounter(c)
    s.fill(0, 2000)
    return s
  }

  it('takes the valid slot with the higher counter, slot A on a tie', () => {
    assert.equal(pickHeader(withCounter(5n), withCounter(4n)).slot, 0)
    assert.equal(pickHeader(withCounter(4n), withCounter(5n)).slot, 1)
    assert.equal(pickHeader(withCounter(5n), withCounter(5n)).slot, 0)
    assert.equal(pickHeader(withCounter(2n ** 64n - 1n), withCounter(1n)).header.counter, 2n ** 64n - 1n)
  })

  it('falls back to the other slot when one is torn, whatever its counter', () => {
    assert.deepEqual(pickHeader(torn(9n), withCounter(3n)).header.counter, 3n)
    assert.deepEqual(pickHeader(withCounter(3n), torn(9n)), {header: {...goldenHeader(), counter: 3n}, slot: 0})
    assert.equal(pickHeader(foreign(), withCounter(3n)).slot, 1)
  })

  it('refuses two foreign slots with PSF_FOREIGN', () => {
    assert.throws(
      () => pickHeader(foreign(), Buffer.alloc(4096)),
      (e: unknown) => e instanceof StateError && e.code === 'PSF_FOREIGN',
    )
  })

  it('refuses a corrupt and a foreign slot, or two corrupt ones, with PSF_CORRUPT and a hint', () => {
    for (const [a, b] of [
      [torn(2n), foreign()],
      [foreign(), torn(2n)],
      [torn(2n), torn(3n)],
    ]) {
      assert.throws(
        () => pickHeader(a, b),
        (e: unknown) => e instanceof StateError && e.code === 'PSF_CORRUPT' && /init --force/.test(e.hint ?? ''),
      )
    }
  })

  it('refuses two slots of another version with PSF_VERSION', () => {
    const v4 = fixCrc(Buffer.from(withCounter(1n)).fill(4, 8, 9))
    assert.throws(() => pickHeader(v4, v4), {code: 'PSF_VERSION'})
  })
})
