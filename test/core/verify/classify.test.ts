// Tests of src/core/verify/classify.ts: each difference gets exactly one reason. Pending where
// the record holds the block; replica-changed where the replica is not the index's (the last
// committed point); source-unrecorded where only the source moved and the record is trusted
// (unverified when it is in doubt); no-index where nothing can tell. The replica's count of
// changed blocks leaves pending blocks out (a commit whose index update was lost).
import assert from 'node:assert/strict'
import {blockHasher, HashAlgo, HASH_LENGTH} from '../../../src/core/hash/block-hash.js'
import {Bitmap} from '../../../src/core/psf/bitmap.js'
import {BlockKind} from '../../../src/core/protocol/messages.js'
import {SEND, SKIP} from '../../../src/core/fullsync/plan.js'
import {DifferenceMarks} from '../../../src/core/verify/classify.js'

const BS = 4096
const N = 8
const hasher = blockHasher(HashAlgo.SHA256, Buffer.alloc(16))
const h = (s: string) => hasher.hash(Buffer.from(s.padEnd(BS, '.')))

/** Index = 'i<b>' for every block; replica statuses and actions from the arrays. */
function marks(replica: string[], differs: number[], opts: {index?: boolean; badPages?: number[]} = {}): DifferenceMarks {
  const index = Buffer.concat(Array.from({length: N}, (_, b) => h(`i${b}`)))
  const m = new DifferenceMarks(N, BS, N * BS, hasher, {hashes: opts.index === false ? undefined : index, badPages: opts.badPages ?? []})
  const theirHashes = Buffer.concat(replica.map((r) => h(r)))
  const action = new Uint8Array(N).fill(SKIP)
  for (const b of differs) action[b] = SEND
  assert.equal(theirHashes.length, N * HASH_LENGTH)
  m.add({first: 0, count: N, sums: {sums: Buffer.alloc(0), zero: new Uint8Array(N)}, theirKinds: new Uint8Array(N).fill(BlockKind.HASH), theirHashes, action})
  return m
}

const atCommit = Array.from({length: N}, (_, b) => `i${b}`)
const bits = (...blocks: number[]) => {
  const bm = new Bitmap(N)
  for (const b of blocks) bm.set(b)
  return bm
}
const reasons = (set: {ranges: Array<{firstBlock: number; blocks: number; reason: string}>}) => set.ranges.map((r) => [r.firstBlock, r.blocks, r.reason])

describe('verify/classify', () => {
  it('source moved where the record says so: pending (recorded); nothing unexpected', () => {
    const c = marks(atCommit, [2, 3]).classify(bits(2, 3), false)
    assert.deepEqual(reasons(c.pending), [[2, 2, 'recorded']])
    assert.equal(c.unexpected.blocks, 0)
    assert.equal(c.replicaChanged, 0)
  })

  it('the replica moved off the last commit: replica-changed, counted', () => {
    const rep = [...atCommit]
    rep[5] = 'tampered'
    const c = marks(rep, [5]).classify(bits(), false)
    assert.deepEqual(reasons(c.unexpected), [[5, 1, 'replica-changed']])
    assert.equal(c.replicaChanged, 1)
  })

  it('the source moved and the record does not know: source-unrecorded, or unverified when the record is in doubt', () => {
    assert.deepEqual(reasons(marks(atCommit, [1]).classify(bits(), false).unexpected), [[1, 1, 'source-unrecorded']])
    const doubt = marks(atCommit, [1]).classify(bits(), true)
    assert.deepEqual(reasons(doubt.pending), [[1, 1, 'unverified']])
    assert.equal(doubt.unexpected.blocks, 0)
  })

  it('a pending block whose replica already moved (committed, index update lost) is not counted as changed', () => {
    const rep = [...atCommit]
    rep[6] = 'committed-new'
    const c = marks(rep, []).classify(bits(6), false)
    assert.equal(c.replicaChanged, 0)
    assert.equal(c.unexpected.blocks, 0)
  })

  it('no valid index, or a damaged index page: no-index, and the replica count is unknown', () => {
    const c = marks(atCommit, [0, 7], {index: false}).classify(bits(), false)
    assert.deepEqual(reasons(c.unexpected), [
      [0, 1, 'no-index'],
      [7, 1, 'no-index'],
    ])
    assert.equal(c.replicaUnknown, N)
    assert.equal(marks(atCommit, [], {badPages: [0]}).classify(bits(), false).replicaUnknown, N)
  })
})
