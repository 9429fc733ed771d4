// Tests of src/core/protocol/client-hello.ts: the one HELLO every client sends carries the
// record's identity, the protocol version, zeros for a query's commit, and COMPRESS exactly when
// codecs are offered (a receiver that does not know the bit refuses the hello, so a stray bit
// would cost an old peer its session).
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {PROTOCOL_VERSION} from '../../../src/core/protocol/frame.js'
import {encodeClientHello} from '../../../src/core/protocol/client-hello.js'
import {COMMIT_ID_LENGTH, decodeHello, HelloFlag, SyncMode} from '../../../src/core/protocol/messages.js'

const identity = {
  hashAlgo: 2,
  blockSize: 65536,
  diskSize: 1 << 30,
  replicaId: Buffer.alloc(16, 0x11),
  lastCommit: Buffer.alloc(COMMIT_ID_LENGTH, 0xa5),
}

describe('encodeClientHello', () => {
  it('carries the record identity and the version, and a query commits nothing (zeros)', () => {
    const h = decodeHello(encodeClientHello(identity, {mode: SyncMode.POINTS, flags: 0, path: 'vm/disk.img'}))
    assert.equal(h.version, PROTOCOL_VERSION)
    assert.equal(h.mode, SyncMode.POINTS)
    assert.equal(h.hashAlgo, 2)
    assert.equal(h.blockSize, 65536)
    assert.equal(h.diskSize, 1 << 30)
    assert.deepEqual(h.replicaId, identity.replicaId)
    assert.deepEqual(h.lastCommit, identity.lastCommit)
    assert.deepEqual(h.nextCommit, Buffer.alloc(COMMIT_ID_LENGTH))
    assert.equal(h.path, 'vm/disk.img')
    assert.equal(h.flags, 0)
  })

  it('uses the size read now over the header size, and the given next commit', () => {
    const next = Buffer.alloc(COMMIT_ID_LENGTH, 0x3c)
    const h = decodeHello(encodeClientHello(identity, {mode: SyncMode.DELTA, diskSize: 12345 * 512, flags: HelloFlag.FINAL, nextCommit: next, path: 'x'}))
    assert.equal(h.diskSize, 12345 * 512)
    assert.deepEqual(h.nextCommit, next)
    assert.equal(h.flags, HelloFlag.FINAL)
  })

  it('sets COMPRESS exactly when codecs are offered (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({min: 1, max: 255}), {maxLength: 4}), fc.integer({min: 0, max: 0x7f}), (codecs, flags) => {
        const h = decodeHello(encodeClientHello(identity, {mode: SyncMode.FULLSYNC, flags, codecs, path: 'p'}))
        assert.equal((h.flags & HelloFlag.COMPRESS) !== 0, codecs.length > 0)
        assert.equal(h.flags & ~HelloFlag.COMPRESS, flags)
        assert.deepEqual(h.codecs ?? [], codecs)
      }),
    )
  })
})
