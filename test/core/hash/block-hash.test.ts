// The block checksum algorithms: known answers, keying, the 32-byte slot, the proof's hasher.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import {spawnSync} from 'node:child_process'
import fc from 'fast-check'
import * as native from '../../../src/core/native/binding.js'
import {xxh3IntoNative} from '../../../src/core/native/hashing.js'
import {blockHasher, defaultHashAlgo, HASH_LENGTH, HashAlgo, hashAlgoName, parseHashAlgo} from '../../../src/core/hash/block-hash.js'

const KEY_A = Buffer.from('00112233445566778899aabbccddeeff', 'hex')
const KEY_B = Buffer.from('01112233445566778899aabbccddeeff', 'hex')

describe('block hash', () => {
  it('xxh3 is the default and every name parses back to its id', () => {
    assert.equal(defaultHashAlgo(), HashAlgo.XXH3)
    for (const id of [HashAlgo.SHA256, HashAlgo.BLAKE3, HashAlgo.XXH3]) assert.equal(parseHashAlgo(hashAlgoName(id)), id)
    assert.equal(parseHashAlgo('xxh128'), HashAlgo.XXH3)
    assert.throws(() => parseHashAlgo('md5'), /unknown hash algorithm 'md5'/)
  })

  it('xxh3 with a zero seed is XXH3-128 as xxhsum computes it, in the first 16 bytes of a zero-padded slot', () => {
    const h = blockHasher(HashAlgo.XXH3, Buffer.alloc(16))
    const abc = h.hash(Buffer.from('abc'))
    assert.equal(abc.length, HASH_LENGTH)
    // xxhsum -H2 of "abc" (xxHash 0.8): 06b05ab6733a618578af5f94892f3950
    assert.equal(abc.subarray(0, 16).toString('hex'), '06b05ab6733a618578af5f94892f3950')
    assert.ok(abc.subarray(16).equals(Buffer.alloc(16)))
    const r = spawnSync('xxhsum', ['-H2'], {input: 'vdrep block', encoding: 'utf8'})
    if (r.status === 0) assert.equal(h.hash(Buffer.from('vdrep block')).subarray(0, 16).toString('hex'), r.stdout.split(/\s+/)[0])
  })

  it("xxh3: the addon's hash is xxhash-addon's, for any bytes, length and key (checksums on disk and on the wire depend on it)", function () {
    if (!xxh3IntoNative()) this.skip() // no addon here: xxhash-addon is all there is
    fc.assert(
      fc.property(fc.uint8Array({minLength: 0, maxLength: 70_000}), fc.uint8Array({minLength: 16, maxLength: 16}), (bytes, key) => {
        const data = Buffer.from(bytes)
        const ours = blockHasher(HashAlgo.XXH3, Buffer.from(key)).hash(data)
        native.__forceFallbackForTests(true)
        try {
          assert.deepEqual(blockHasher(HashAlgo.XXH3, Buffer.from(key)).hash(data), ours)
        } finally {
          native.__forceFallbackForTests(false)
        }
      }),
      {numRuns: 300},
    )
  })

  it('xxh3 is keyed by the replica id: another key, another checksum; the same key, the same one', () => {
    const data = crypto.randomBytes(65536)
    const a = blockHasher(HashAlgo.XXH3, KEY_A)
    assert.deepEqual(a.hash(data), blockHasher(HashAlgo.XXH3, Buffer.from(KEY_A)).hash(data))
    assert.notDeepEqual(a.hash(data), blockHasher(HashAlgo.XXH3, KEY_B).hash(data))
    // The key does not change the cryptographic algorithms.
    assert.deepEqual(blockHasher(HashAlgo.BLAKE3, KEY_A).hash(data), blockHasher(HashAlgo.BLAKE3, KEY_B).hash(data))
  })

  it('hashInto writes exactly the slot hash() returns, and one hasher carries no state between blocks', () => {
    for (const algo of [HashAlgo.SHA256, HashAlgo.BLAKE3, HashAlgo.XXH3]) {
      const h = blockHasher(algo, KEY_A)
      fc.assert(
        fc.property(fc.uint8Array({maxLength: 9000}), fc.uint8Array({maxLength: 9000}), (x, y) => {
          const out = Buffer.alloc(3 * HASH_LENGTH, 0xee)
          h.hashInto(Buffer.from(x), out, HASH_LENGTH)
          assert.deepEqual(out.subarray(HASH_LENGTH, 2 * HASH_LENGTH), h.hash(Buffer.from(x)))
          assert.ok(out.subarray(0, HASH_LENGTH).equals(Buffer.alloc(HASH_LENGTH, 0xee)), 'wrote before its slot')
          assert.ok(out.subarray(2 * HASH_LENGTH).equals(Buffer.alloc(HASH_LENGTH, 0xee)), 'wrote past its slot')
          h.hash(Buffer.from(y))
          assert.deepEqual(h.hash(Buffer.from(x)), blockHasher(algo, KEY_A).hash(Buffer.from(x)))
        }),
        {numRuns: 60},
      )
    }
  })

  it('the whole-disk proof of xxh3 is SHA-256 over the block checksums (cryptographic, in Node itself)', () => {
    const s = blockHasher(HashAlgo.XXH3, KEY_A).createStream()
    s.update(Buffer.from('a'))
    s.update(Buffer.from('b'))
    assert.deepEqual(s.digest(), crypto.createHash('sha256').update('ab').digest())
  })

  it('zeroHash is the hash of zeros, per length', () => {
    const h = blockHasher(HashAlgo.XXH3, KEY_A)
    assert.deepEqual(h.zeroHash(4096), h.hash(Buffer.alloc(4096)))
    assert.notDeepEqual(h.zeroHash(4096), h.zeroHash(4095))
  })

  it("xxh3 (the addon's) and the proof's stream: every hasher calls the same functions, whatever its key", function () {
    // A serve makes a hasher per session; functions made per hasher were compiled into the
    // receive path's code and thrown away with the session (V8's "weak objects").
    if (!xxh3IntoNative()) this.skip()
    const [a, b] = [blockHasher(HashAlgo.XXH3, KEY_A), blockHasher(HashAlgo.XXH3, Buffer.alloc(16, 7))]
    for (const m of ['hash', 'hashInto', 'createStream', 'zeroHash'] as const) assert.equal(a[m], b[m], m)
    const [sa, sb] = [a.createStream(), b.createStream()]
    assert.equal(sa.update, sb.update)
    assert.equal(sa.digest, sb.digest)
  })
})
