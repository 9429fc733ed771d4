// A full sync's planning, without a receiver: what is skipped, zeroed or sent per block, the
// runs a mapped chunk reads, the re-decision on what was read, the resume point, the cadence,
// and the refusals before anything is read.
import assert from 'node:assert/strict'
import {BlockKind, ReplicaStateKind} from '../../../src/core/protocol/messages.js'
import {DEFAULT_CHECKPOINT_BYTES} from '../../../src/core/protocol/flow.js'
import {newHeader} from '../../../src/core/psf/psf-file.js'
import {
  checkBeforeSync,
  checkpointBlocks,
  checkTargetNotSource,
  decideAll,
  MAP_BELOW_SEND_SHARE,
  nextSendShare,
  redecideFilled,
  resumePoint,
  SEND,
  sendRuns,
  SKIP,
  ZERO,
} from '../../../src/core/fullsync/plan.js'

const H = 32
const hash = (n: number) => Buffer.alloc(H, n)
/** Our sums for blocks given as 'z' (zero) or a hash byte. */
function sums(blocks: Array<'z' | number>) {
  return {sums: Buffer.concat(blocks.map((b) => hash(b === 'z' ? 0 : b))), zero: Uint8Array.from(blocks.map((b) => (b === 'z' ? 1 : 0)))}
}
function theirs(blocks: Array<'z' | 'u' | number>) {
  return {
    kinds: Uint8Array.from(blocks.map((b) => (b === 'z' ? BlockKind.ZERO : b === 'u' ? BlockKind.UNKNOWN : BlockKind.HASH))),
    hashes: Buffer.concat(blocks.map((b) => hash(typeof b === 'number' ? b : 0))),
  }
}

describe('full sync plan', () => {
  it('decides each block: equal skipped, zero where theirs is zero skipped, zero elsewhere a zero run, the rest sent', () => {
    const ours = sums([1, 2, 'z', 'z', 5, 6])
    const t = theirs([1, 9, 'z', 4, 'u', 'z'])
    const action = new Uint8Array(6)
    assert.equal(decideAll(ours, t.kinds, t.hashes, action, 0, 6), 3)
    assert.deepEqual([...action], [SKIP, SEND, SKIP, ZERO, SEND, SEND])
    assert.deepEqual(sendRuns(action, 6), [
      [1, 2],
      [4, 6],
    ])
  })

  it('re-decides a mapped chunk on what fill() read: now equal is skipped, now zero a zero run', () => {
    const ours = sums([1, 2, 3, 4])
    const t = theirs([1, 7, 'z', 8])
    const action = new Uint8Array(4)
    assert.equal(decideAll(ours, t.kinds, t.hashes, action, 0, 4), 3)
    const runs = sendRuns(action, 4)
    assert.deepEqual(runs, [[1, 4]])
    const fresh = sums([0, 7, 'z', 9]) // block 1 now equals theirs, 2 became zero, 3 changed again
    const {sums: merged, toSend} = redecideFilled(ours, fresh, runs, t.kinds, t.hashes, action)
    assert.deepEqual([...action], [SKIP, SKIP, SKIP, SEND])
    assert.equal(toSend, 1)
    assert.deepEqual(merged.sums.subarray(3 * H), hash(9))
    assert.deepEqual(merged.sums.subarray(0, H), hash(1), 'blocks outside the runs keep their first sums')
    assert.deepEqual(ours.sums.subarray(3 * H), hash(4), "the chunk's own sums are not changed")
  })

  it('resumes only an incomplete replica; checkpoints by bytes, capped', () => {
    assert.equal(resumePoint(ReplicaStateKind.INCOMPLETE, 77), 77)
    assert.equal(resumePoint(ReplicaStateKind.COMPLETE, 77), 0)
    assert.equal(resumePoint(ReplicaStateKind.MISSING, 77), 0)
    assert.equal(checkpointBlocks(undefined, 65536), DEFAULT_CHECKPOINT_BYTES / 65536)
    assert.equal(checkpointBlocks(1 << 20, 65536), 16)
    assert.equal(checkpointBlocks(1, 65536), 1)
    assert.equal(checkpointBlocks(2 ** 40, 4096), 1 << 16)
  })

  it('refuses before reading: a shrunk disk (unless truncating), a resize under a tracker, a target that is the source', () => {
    const h = newHeader({diskSize: 8192, blockSize: 4096, hashAlgo: 1, settings: {target: '/x', rpoSeconds: 900, fullsyncPort: 1, deltaPort: 2}})
    assert.throws(
      () => checkBeforeSync('/d', h, 4096, false, false),
      (e: {code?: string}) => e.code === 'SOURCE_SHRANK',
    )
    checkBeforeSync('/d', h, 4096, false, true)
    checkBeforeSync('/d', h, 16384, false, false)
    assert.throws(
      () => checkBeforeSync('/d', h, 16384, true, false),
      (e: {code?: string}) => e.code === 'DISK_RESIZED_WHILE_TRACKED',
    )
    assert.throws(
      () => checkTargetNotSource('/v/d.img', '/v/d.img.psf'),
      (e: {code?: string}) => e.code === 'TARGET_IS_SOURCE',
    )
    assert.throws(() => checkTargetNotSource('/v/d.img', '/v/d.img'), /is the source disk/)
    checkTargetNotSource('/v/d.img', '/r/d.img')
  })
  it('the send share that picks mapping is over data blocks: a chunk of holes leaves it as it was', () => {
    // A fresh replica of a disk whose data and holes alternate per chunk: every data chunk is
    // sent whole, so every one must be read, never mapped first (the hole chunk between them
    // sends nothing, and before this rule made the next data chunk look like a 1% seed).
    const holes = sums(['z', 'z', 'z', 'z']).zero
    const data = sums([1, 2, 3, 'z']).zero
    let share = 1
    share = nextSendShare(share, holes, 4, 0)
    assert.equal(share, 1)
    assert.ok(!(share < MAP_BELOW_SEND_SHARE), 'after a chunk of holes the next data chunk is read')
    share = nextSendShare(share, data, 4, 3)
    assert.equal(share, 1)
    // A seed where 1 of 3 data blocks differs, and then holes: still below 1 and unchanged by the holes.
    share = nextSendShare(share, data, 4, 0)
    assert.equal(share, 0)
    assert.equal(nextSendShare(share, holes, 4, 0), 0)
    assert.equal(nextSendShare(0, data, 4, 1), 1 / 3)
  })
})
