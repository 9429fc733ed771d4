// Tests of src/core/receiver/replica-state.ts: the envelope codec against a hand-written
// file, round trips, every byte flipped, every truncation, each validated body field, and
// reading and writing the state file beside a replica in a temp folder.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import zlib from 'node:zlib'
import fc from 'fast-check'
import {StateError} from '../../../src/core/errors.js'
import {
  decodeReplicaState,
  encodeReplicaState,
  readReplicaState,
  statePathFor,
  writeReplicaState,
  type ReplicaState,
} from '../../../src/core/receiver/replica-state.js'

const BODY =
  '{"replicaId":"00112233445566778899aabbccddeeff","complete":true,"resumeBlock":16,"diskSize":1048576,"blockSize":65536,' +
  '"hashAlgo":2,"generation":3,"lastSeq":42,"digest":"ab","size":1048576,"mtimeNs":"1700000000123456789",' +
  '"ctimeNs":"1700000000987654321","updatedMs":1700000000000}'

// magic "VDRSTATE", version 1, reserved 0, body length 278, crc32 of the body (Python's zlib), body.
const golden = () => Buffer.concat([Buffer.from('5644525354415445' + '0100' + '0000' + '16010000' + 'a1671dc6', 'hex'), Buffer.from(BODY, 'ascii')])

const VALUE: ReplicaState = {
  replicaId: '00112233445566778899aabbccddeeff',
  complete: true,
  resumeBlock: 16,
  diskSize: 1048576,
  blockSize: 65536,
  hashAlgo: 2,
  generation: 3,
  lastSeq: 42,
  digest: 'ab',
  size: 1048576,
  mtimeNs: '1700000000123456789',
  ctimeNs: '1700000000987654321',
  updatedMs: 1700000000000,
}

/** An envelope around any body, with a correct length and crc (to reach the body checks). */
function envelope(body: string): Buffer {
  const b = Buffer.from(body, 'utf8')
  const head = Buffer.from('5644525354415445010000000000000000000000', 'hex')
  head.writeUInt32LE(b.length, 12)
  head.writeUInt32LE(zlib.crc32(b), 16)
  return Buffer.concat([head, b])
}

const stateCode = (code: string) => (e: unknown) => e instanceof StateError && e.code === code

const stateArb: fc.Arbitrary<ReplicaState> = fc.record(
  {
    replicaId: fc.uint8Array({minLength: 16, maxLength: 16}).map((u) => Buffer.from(u).toString('hex')),
    complete: fc.boolean(),
    resumeBlock: fc.maxSafeNat(),
    diskSize: fc.maxSafeNat(),
    blockSize: fc.maxSafeNat(),
    hashAlgo: fc.maxSafeNat(),
    generation: fc.maxSafeNat(),
    lastSeq: fc.maxSafeNat(),
    digest: fc.string({unit: 'binary', maxLength: 200}),
    size: fc.maxSafeNat(),
    mtimeNs: fc.bigInt({min: 0n, max: 2n ** 64n}).map(String),
    ctimeNs: fc.bigInt({min: 0n, max: 2n ** 64n}).map(String),
    updatedMs: fc.maxSafeNat(),
  },
  {noNullPrototype: true},
)

describe('replica state codec', () => {
  it('encodes to the hand-written bytes', () => {
    assert.deepEqual(encodeReplicaState(VALUE), golden())
  })

  it('decodes the hand-written bytes', () => {
    assert.deepEqual(decodeReplicaState(golden()), VALUE)
  })

  it('round-trips any state', () => {
    fc.assert(
      fc.property(stateArb, (s) => assert.deepEqual(decodeReplicaState(encodeReplicaState(s)), s)),
      {numRuns: 300},
    )
  })

  it('rejects every single flipped byte: the magic as foreign, the rest as corrupt', () => {
    const g = golden()
    for (let i = 0; i < g.length; i++) {
      for (const mask of [0x01, 0xff]) {
        const b = Buffer.from(g)
        b[i] ^= mask
        assert.throws(() => decodeReplicaState(b), stateCode(i < 8 ? 'REPLICA_STATE_FOREIGN' : 'REPLICA_STATE_CORRUPT'), `byte ${i} mask ${mask}`)
      }
    }
  })

  it('rejects the file cut at every length, and a trailing byte', () => {
    const g = golden()
    for (let n = 0; n < g.length; n++) assert.throws(() => decodeReplicaState(g.subarray(0, n)), stateCode('REPLICA_STATE_CORRUPT'), `length ${n}`)
    assert.throws(() => decodeReplicaState(Buffer.concat([g, Buffer.from('\n')])), stateCode('REPLICA_STATE_CORRUPT'))
  })

  it('refuses a body length past the limit before looking at the body', () => {
    const b = golden()
    b.writeUInt32LE(0xffffffff, 12)
    assert.throws(
      () => decodeReplicaState(b),
      (e: unknown) => stateCode('REPLICA_STATE_CORRUPT')(e) && /exceeds/.test((e as Error).message),
    )
  })

  it('refuses another version and a nonzero reserved field', () => {
    const v2 = golden()
    v2.writeUInt16LE(2, 8)
    assert.throws(() => decodeReplicaState(v2), stateCode('REPLICA_STATE_CORRUPT'))
    const r = golden()
    r.writeUInt16LE(1, 10)
    assert.throws(() => decodeReplicaState(r), stateCode('REPLICA_STATE_CORRUPT'))
  })

  const field = (k: string, v: unknown) => JSON.stringify({...VALUE, [k]: v})
  for (const [what, body] of [
    ['not JSON', '{"replicaId":'],
    ['null', 'null'],
    ['a string', '"x"'],
    ['a number', '5'],
    ['an empty object', '{}'],
    ['an uppercase replica id', field('replicaId', '00112233445566778899AABBCCDDEEFF')],
    ['a short replica id', field('replicaId', '0011')],
    ['complete as a number', field('complete', 1)],
    ['a negative block', field('resumeBlock', -1)],
    ['a fractional size', field('diskSize', 1.5)],
    ['a size past 2^53', field('size', 2 ** 53)],
    ['a numeric digest', field('digest', 5)],
    ['a missing mtime', JSON.stringify({...VALUE, mtimeNs: undefined})],
  ] as const) {
    it(`refuses a body that is ${what}`, () => {
      assert.throws(() => decodeReplicaState(envelope(body)), stateCode('REPLICA_STATE_CORRUPT'))
    })
  }

  it('refuses to encode a state past the body limit', () => {
    assert.throws(() => encodeReplicaState({...VALUE, digest: 'x'.repeat(17000)}), RangeError)
  })
})

describe('replica state file', () => {
  let dir: string
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vdrep-rstate-'))
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('lives beside the replica', () => {
    assert.equal(statePathFor('/srv/r/disk.img'), '/srv/r/disk.img.vdrep')
  })

  it('reads nothing when there is no state file', async () => {
    assert.deepEqual(await readReplicaState(path.join(dir, 'r.img')), {})
  })

  it('writes a 0600 file that reads back', async () => {
    const replica = path.join(dir, 'r.img')
    await writeReplicaState(replica, VALUE)
    assert.equal((await fs.stat(statePathFor(replica))).mode & 0o777, 0o600)
    assert.deepEqual(await fs.readFile(statePathFor(replica)), golden())
    assert.deepEqual(await readReplicaState(replica), {state: VALUE})
  })

  it('reports a corrupt file as an error instead of trusting it', async () => {
    const replica = path.join(dir, 'r.img')
    const b = golden()
    b[40] ^= 1
    await fs.writeFile(statePathFor(replica), b)
    const got = await readReplicaState(replica)
    assert.equal(got.state, undefined)
    assert.equal(got.error?.code, 'REPLICA_STATE_CORRUPT')
  })
})
