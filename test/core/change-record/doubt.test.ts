// The one trust rule of the change record: each reason, by kind, in its order.
import assert from 'node:assert/strict'
import {HeaderFlag, type PsfHeader} from '../../../src/core/psf/header.js'
import {newHeader} from '../../../src/core/psf/psf-file.js'
import {canVerify, curedByVerification, DoubtKind, doubtOf, doubtsOf, flagDoubt, needsFullSyncFlag} from '../../../src/core/change-record/doubt.js'
import {IdentityKind} from '../../../src/core/psf/disk-identity.js'

const s = {size: 8192, mtimeNs: 1_700_000_000_000_000_001n, ctimeNs: 1_700_000_000_000_000_002n}

function header(flags: number, generation = 1): PsfHeader {
  return {
    ...newHeader({diskSize: 8192, blockSize: 4096, hashAlgo: 1, settings: {target: '/x', rpoSeconds: 900, fullsyncPort: 1, deltaPort: 2}}),
    flags,
    generation,
    sourceSize: s.size,
    sourceMtimeNs: s.mtimeNs,
    sourceCtimeNs: s.ctimeNs,
  }
}
const untracked = {trackerRunning: false}
const tracked = {trackerRunning: true}

describe('change record doubt (one trust rule, typed reasons)', () => {
  it('a trusted record: no doubt, tracked or not', () => {
    assert.equal(doubtOf(header(HeaderFlag.CLEAN_SHUTDOWN | HeaderFlag.INDEX_VALID), s, untracked), null)
    assert.equal(doubtOf(header(HeaderFlag.CLEAN_SHUTDOWN), {...s, mtimeNs: 5n}, tracked), null, 'a running tracker covers every write')
    assert.equal(doubtOf(header(0), {...s, mtimeNs: 5n}, tracked), null, 'a running tracker cleared the clean flag itself')
  })

  it('after an unclean stop with no tracker: a local verification, whatever the stamp (a write after the kill, a .psf copied while a tracker ran)', () => {
    for (const now of [s, {...s, mtimeNs: 5n}]) {
      const d = doubtOf(header(HeaderFlag.INDEX_VALID), now, untracked)
      assert.equal(d?.kind, DoubtKind.UNCLEAN_STOP)
      assert.match(d?.message ?? '', /no tracker stopped cleanly/)
      assert.ok(curedByVerification(d as never))
    }
    assert.ok(canVerify(header(HeaderFlag.INDEX_VALID)))
    assert.ok(!canVerify(header(0)), 'no index to check against')
    assert.ok(!canVerify(header(HeaderFlag.INDEX_VALID | HeaderFlag.NEEDS_FULL_SYNC)))
  })

  it('VERIFY_NEEDED (an outside write seen by a tracker) and an unwatched block device: verification kinds, tracked or not', () => {
    const h = header(HeaderFlag.VERIFY_NEEDED | HeaderFlag.CLEAN_SHUTDOWN | HeaderFlag.INDEX_VALID)
    assert.deepEqual(
      doubtsOf(h, s, untracked).map((d) => d.kind),
      [DoubtKind.VERIFY_NEEDED],
    )
    assert.deepEqual(
      doubtsOf(h, s, tracked).map((d) => d.kind),
      [DoubtKind.VERIFY_NEEDED],
    )
    const dev = {
      ...header(HeaderFlag.CLEAN_SHUTDOWN | HeaderFlag.INDEX_VALID),
      identity: {kind: IdentityKind.BLOCK_DEVICE, dev: 0x703n, ino: 8192n, path: '/dev/loop3'},
    }
    assert.deepEqual(
      doubtsOf(dev, s, untracked).map((d) => d.kind),
      [DoubtKind.BLOCK_DEVICE_UNWATCHED],
      'its stamp does not move when it is written through a mount',
    )
    assert.deepEqual(doubtsOf(dev, s, tracked), [])
    for (const d of doubtsOf({...dev, flags: 0}, {...s, mtimeNs: 1n}, untracked)) assert.ok(curedByVerification(d), d.kind)
  })

  it('NEEDS_FULL_SYNC: never synced (generation 0) or marked untrusted', () => {
    const never = doubtOf(header(HeaderFlag.NEEDS_FULL_SYNC, 0), s, untracked)
    assert.deepEqual(never, {kind: DoubtKind.NEVER_SYNCED, message: 'no full sync has completed since init'})
    const marked = doubtOf(header(HeaderFlag.NEEDS_FULL_SYNC, 3), s, tracked)
    assert.equal(marked?.kind, DoubtKind.MARKED_UNTRUSTED)
    assert.match(marked?.message ?? '', /marked untrusted/)
    assert.ok(needsFullSyncFlag(never as never) && needsFullSyncFlag(marked as never))
    assert.equal(flagDoubt(header(0)), null)
  })

  it('a source that shrank', () => {
    const d = doubtOf(header(0), {...s, size: 4096}, untracked)
    assert.equal(d?.kind, DoubtKind.SOURCE_SHRANK)
    assert.equal(d?.message, 'the source disk shrank (4096 < 8192 bytes)')
    assert.equal(doubtOf(header(0), {...s, size: 4096}, tracked)?.kind, DoubtKind.SOURCE_SHRANK)
  })

  it('after a clean stop, any change of size, mtime or ctime (to the nanosecond) with no tracker', () => {
    const h = header(HeaderFlag.CLEAN_SHUTDOWN)
    for (const [now, re] of [
      [{...s, mtimeNs: s.mtimeNs + 1n}, /\(its mtime changed .* since the tracker stopped\)/],
      [{...s, ctimeNs: s.ctimeNs + 1n}, /its ctime changed/],
      [{...s, size: 16384}, /its size changed from 8192 to 16384 bytes/],
    ] as const) {
      const d = doubtsOf(h, now, untracked).find((x) => x.kind !== DoubtKind.SOURCE_GREW)
      assert.equal(d?.kind, DoubtKind.WRITTEN_WITHOUT_TRACKER)
      assert.ok(curedByVerification(d as never))
      assert.match(d?.message ?? '', /^the disk was written while no tracker ran/)
      assert.match(d?.message ?? '', re)
    }
  })

  it('a source that grew: its own kind, and the message says whether a tracker runs', () => {
    const d = doubtOf(header(0), {...s, size: 16384}, untracked)
    assert.deepEqual(d, {kind: DoubtKind.SOURCE_GREW, message: 'the disk is 16384 bytes but the .psf was made for 8192'})
    assert.match(doubtOf(header(0), {...s, size: 16384}, tracked)?.message ?? '', /grew while a tracker was running/)
    assert.ok(!curedByVerification(d as never))
  })

  it('every reason, most serious first; doubtOf is the first', () => {
    const h = header(HeaderFlag.NEEDS_FULL_SYNC | HeaderFlag.CLEAN_SHUTDOWN, 2)
    // A record a full sync must redo has no unmarked writes worth looking for.
    assert.deepEqual(
      doubtsOf(h, {...s, size: 4096}, untracked).map((d) => d.kind),
      [DoubtKind.MARKED_UNTRUSTED, DoubtKind.SOURCE_SHRANK],
    )
    assert.deepEqual(
      doubtsOf(h, {...s, size: 16384}, untracked).map((d) => d.kind),
      [DoubtKind.MARKED_UNTRUSTED, DoubtKind.SOURCE_GREW],
    )
    assert.equal(doubtOf(h, s, untracked)?.kind, DoubtKind.MARKED_UNTRUSTED)
    const clean = header(HeaderFlag.CLEAN_SHUTDOWN | HeaderFlag.INDEX_VALID | HeaderFlag.VERIFY_NEEDED, 2)
    assert.deepEqual(
      doubtsOf(clean, {...s, size: 16384}, untracked).map((d) => d.kind),
      [DoubtKind.SOURCE_GREW, DoubtKind.VERIFY_NEEDED, DoubtKind.WRITTEN_WITHOUT_TRACKER],
    )
  })
})
