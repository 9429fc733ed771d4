// The one trust rule of the change record: each reason, by kind, in its order.
import assert from 'node:assert/strict'
import {HeaderFlag, type PsfHeader} from '../../../src/core/psf/header.js'
import {newHeader} from '../../../src/core/psf/psf-file.js'
import {DoubtKind, doubtOf, doubtsOf, flagDoubt, needsFullSyncFlag} from '../../../src/core/change-record/doubt.js'

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
    assert.equal(doubtOf(header(0), {...s, mtimeNs: 5n}, untracked), null, 'after an unclean stop the bitmap is trusted, whatever the stamp')
    assert.equal(doubtOf(header(HeaderFlag.CLEAN_SHUTDOWN), {...s, mtimeNs: 5n}, tracked), null, 'a running tracker covers every write')
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
      const d = doubtOf(h, now, untracked)
      assert.equal(d?.kind, DoubtKind.WRITTEN_WITHOUT_TRACKER)
      assert.match(d?.message ?? '', /^the disk was written while no tracker ran/)
      assert.match(d?.message ?? '', re)
    }
  })

  it('a source that grew: its own kind, and the message says whether a tracker runs', () => {
    const d = doubtOf(header(0), {...s, size: 16384}, untracked)
    assert.deepEqual(d, {kind: DoubtKind.SOURCE_GREW, message: 'the disk is 16384 bytes but the .psf was made for 8192'})
    assert.match(doubtOf(header(0), {...s, size: 16384}, tracked)?.message ?? '', /grew while a tracker was running/)
  })

  it('every reason, most serious first; doubtOf is the first', () => {
    const h = header(HeaderFlag.NEEDS_FULL_SYNC | HeaderFlag.CLEAN_SHUTDOWN, 2)
    assert.deepEqual(
      doubtsOf(h, {...s, size: 4096}, untracked).map((d) => d.kind),
      [DoubtKind.MARKED_UNTRUSTED, DoubtKind.SOURCE_SHRANK, DoubtKind.WRITTEN_WITHOUT_TRACKER],
    )
    assert.deepEqual(
      doubtsOf(h, {...s, size: 16384}, untracked).map((d) => d.kind),
      [DoubtKind.MARKED_UNTRUSTED, DoubtKind.WRITTEN_WITHOUT_TRACKER, DoubtKind.SOURCE_GREW],
    )
    assert.equal(doubtOf(h, s, untracked)?.kind, DoubtKind.MARKED_UNTRUSTED)
  })
})
