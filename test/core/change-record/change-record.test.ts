// Every transition of the change record on a real .psf: the header and both bitmaps before and
// after, read back through a second, read-only handle (what another process would see).
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {Bitmap} from '../../../src/core/psf/bitmap.js'
import {HeaderFlag, type PsfHeader} from '../../../src/core/psf/header.js'
import {BITS_PER_PAGE, HASHES_PER_PAGE} from '../../../src/core/psf/layout.js'
import {newHeader, psfPathFor} from '../../../src/core/psf/psf-file.js'
import {ChangeRecord} from '../../../src/core/change-record/change-record.js'
import {tempDir} from '../../helpers/disks.js'

/** A commit id, as a push or a full sync records it. */
const CID = Buffer.from('c0ffee00c0ffee00c0ffee00c0ffee00', 'hex')

const BS = 4096
/** Two bitmap pages' worth of blocks, and a partial third: moves touch several pages. */
const BLOCKS = 2 * BITS_PER_PAGE + 100
const SIZE = BLOCKS * BS
const stamp = {size: SIZE, mtimeNs: 1_700_000_000_000_000_001n, ctimeNs: 1_700_000_000_000_000_002n}

async function onDisk(file: string): Promise<{h: PsfHeader; active: number[]; inflight: number[]}> {
  const r = await ChangeRecord.openReadOnly(file)
  try {
    const m = await r.bitmaps()
    return {h: r.header, active: [...m.active.setBlocks()], inflight: [...m.inflight.setBlocks()]}
  } finally {
    await r.close()
  }
}

function bitmapOf(blocks: number[], count = BLOCKS): Bitmap {
  const bm = new Bitmap(count)
  for (const b of blocks) bm.set(b)
  return bm
}

describe('change record transitions (one owner of the .psf)', () => {
  let dir: string
  let file: string
  let rec: ChangeRecord

  beforeEach(async () => {
    dir = await tempDir('vdrep-record-')
    file = psfPathFor(path.join(dir, 'disk.img'))
    await ChangeRecord.init(file, {
      ...newHeader({diskSize: SIZE, blockSize: BS, hashAlgo: 1, settings: {target: '/x', rpoSeconds: 900, fullsyncPort: 1, deltaPort: 2}}),
      flags: HeaderFlag.NEEDS_FULL_SYNC,
    })
    rec = await ChangeRecord.openOwned(file)
  })
  afterEach(async () => {
    await rec.close().catch(() => {})
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('init: NEEDS_FULL_SYNC, generation 0, empty bitmaps, mode 0600', async () => {
    const d = await onDisk(file)
    assert.equal(d.h.flags, HeaderFlag.NEEDS_FULL_SYNC)
    assert.equal(d.h.generation, 0)
    assert.deepEqual([d.active, d.inflight], [[], []])
    assert.equal((await fs.stat(file)).mode & 0o777, 0o600)
  })

  it('unclean start clears CLEAN_SHUTDOWN; its undo puts back only that bit; clean stop sets it with the stamp', async () => {
    await rec.cleanStop(stamp)
    let d = await onDisk(file)
    assert.equal(d.h.flags, HeaderFlag.NEEDS_FULL_SYNC | HeaderFlag.CLEAN_SHUTDOWN)
    assert.deepEqual([d.h.sourceSize, d.h.sourceMtimeNs, d.h.sourceCtimeNs], [stamp.size, stamp.mtimeNs, stamp.ctimeNs])
    const undo = await rec.uncleanStart()
    assert.equal((await onDisk(file)).h.flags, HeaderFlag.NEEDS_FULL_SYNC)
    await rec.markUntrusted() // another bit changed meanwhile stays as it is
    await undo()
    d = await onDisk(file)
    assert.equal(d.h.flags, HeaderFlag.NEEDS_FULL_SYNC | HeaderFlag.CLEAN_SHUTDOWN)
    // A record that was not clean stays unclean after the undo.
    await rec.uncleanStart()
    const undoUnclean = await rec.uncleanStart()
    await undoUnclean()
    assert.equal((await onDisk(file)).h.flags & HeaderFlag.CLEAN_SHUTDOWN, 0)
  })

  it('freeze moves active into in-flight; complete(true) clears it; complete(false) merges it back', async () => {
    await rec.scanResult(bitmapOf([1, BITS_PER_PAGE + 5, BLOCKS - 1]), stamp)
    const frozen = await rec.freeze()
    assert.deepEqual([...frozen.setBlocks()], [1, BITS_PER_PAGE + 5, BLOCKS - 1])
    let d = await onDisk(file)
    assert.deepEqual(d.active, [])
    assert.deepEqual(d.inflight, [1, BITS_PER_PAGE + 5, BLOCKS - 1])
    assert.equal(await rec.complete(false), 3)
    d = await onDisk(file)
    assert.deepEqual(d.active, [1, BITS_PER_PAGE + 5, BLOCKS - 1])
    assert.deepEqual(d.inflight, [])
    await rec.freeze()
    assert.equal(await rec.complete(true), 3)
    d = await onDisk(file)
    assert.deepEqual([d.active, d.inflight], [[], []])
  })

  it('merge of leftovers: blocks a dead push left in flight go back to active', async () => {
    await rec.scanResult(bitmapOf([7, BITS_PER_PAGE]), stamp)
    await rec.freeze()
    await rec.close()
    rec = await ChangeRecord.openOwned(file) // the push died; the next one opens the record
    assert.equal(await rec.mergeLeftoverInflight(), 2)
    const d = await onDisk(file)
    assert.deepEqual([d.active, d.inflight], [[7, BITS_PER_PAGE], []])
    assert.equal(await rec.mergeLeftoverInflight(), 0)
  })

  it('a push: beginCommit, block hashes, commit (with the stamp without a tracker); adoptCommitted after a lost answer', async () => {
    await rec.beginCommit(5)
    assert.equal((await onDisk(file)).h.pendingSeq, 5)
    const hash = Buffer.alloc(32, 0xab)
    await rec.storeBlockHashes(new Map([[130, hash]]))
    await rec.commit({seq: 5, pointInTimeMs: 1234, diskSize: SIZE, commitId: CID, stamp})
    let d = await onDisk(file)
    assert.deepEqual([d.h.lastSeq, d.h.pendingSeq, d.h.lastSyncMs, d.h.sourceMtimeNs], [5, 0, 1234, stamp.mtimeNs])
    assert.deepEqual(d.h.lastCommit, CID, "the commit id is the record's last commit")
    assert.ok(d.h.flags & HeaderFlag.CLEAN_SHUTDOWN)
    assert.deepEqual((await rec.readIndex()).hashes.subarray(130 * 32, 131 * 32), hash)
    // Through a tracker: no stamp, the flags stay the tracker's.
    await rec.uncleanStart()
    await rec.commit({seq: 6, pointInTimeMs: 99, diskSize: SIZE, commitId: CID})
    d = await onDisk(file)
    assert.equal(d.h.flags & HeaderFlag.CLEAN_SHUTDOWN, 0)
    await rec.beginCommit(7)
    await rec.adoptCommitted(7)
    d = await onDisk(file)
    assert.deepEqual([d.h.lastSeq, d.h.pendingSeq], [7, 0])
  })

  it('a full sync: beginFullSync clears INDEX_VALID; provedSync without a tracker clears both bitmaps and records the stamp', async () => {
    await rec.scanResult(bitmapOf([3, BITS_PER_PAGE + 1]), stamp)
    await rec.freeze()
    await rec.scanResult(bitmapOf([4]), stamp)
    await rec.freeze()
    await rec.scanResult(bitmapOf([5]), stamp) // active: 5, in-flight: none (the scan merged it)
    await rec.beginFullSync()
    const index = Buffer.alloc(HASHES_PER_PAGE * 32, 0x11)
    await rec.writeIndexRun(0, index)
    await rec.provedSync({diskSize: SIZE, replicaSeq: 9, syncedMs: 4321, commitId: CID, stamp: {...stamp, mtimeNs: 77n}})
    const d = await onDisk(file)
    assert.deepEqual([d.active, d.inflight], [[], []])
    assert.equal(d.h.flags, HeaderFlag.INDEX_VALID | HeaderFlag.CLEAN_SHUTDOWN)
    assert.deepEqual([d.h.generation, d.h.lastSeq, d.h.pendingSeq, d.h.lastSyncMs, d.h.sourceMtimeNs], [1, 9, 0, 4321, 77n])
    assert.deepEqual((await rec.readIndex()).hashes.subarray(0, index.length), index)
    await rec.beginFullSync()
    assert.equal((await onDisk(file)).h.flags & HeaderFlag.INDEX_VALID, 0)
  })

  it('provedSync through a tracker (no stamp) leaves the bitmaps and CLEAN_SHUTDOWN to the tracker', async () => {
    await rec.scanResult(bitmapOf([3]), stamp)
    await rec.uncleanStart()
    await rec.provedSync({diskSize: SIZE, replicaSeq: 0, syncedMs: 1, commitId: CID})
    const d = await onDisk(file)
    assert.deepEqual(d.active, [3])
    assert.equal(d.h.flags, HeaderFlag.INDEX_VALID)
  })

  it('grow: a new layout, bitmaps and every old index entry but the last (a partial page too) carried over, the new blocks (and the old last one) dirty', async () => {
    await rec.scanResult(bitmapOf([2]), stamp)
    const index = Buffer.alloc((BLOCKS - 1) * 32, 0x22)
    assert.ok(index.length % (HASHES_PER_PAGE * 32) !== 0, 'the index ends on a partial page')
    await rec.writeIndexRun(0, Buffer.concat([index, Buffer.alloc(32, 0x22)]))
    await rec.grow(SIZE + 10 * BS)
    const d = await onDisk(file)
    assert.equal(d.h.diskSize, SIZE + 10 * BS)
    assert.deepEqual(d.active, [2, ...Array.from({length: 11}, (_, i) => BLOCKS - 1 + i)])
    assert.equal(rec.blockCount, BLOCKS + 10)
    assert.deepEqual((await rec.readIndex()).hashes.subarray(0, index.length), index)
  })

  it('provedSyncResized: a grown disk proved, a new layout with its whole index, INDEX_VALID only then', async () => {
    const index = Buffer.alloc((BLOCKS + 3) * 32, 0x33)
    await rec.provedSyncResized({diskSize: SIZE + 3 * BS, replicaSeq: 4, syncedMs: 8, commitId: CID, stamp: {...stamp, size: SIZE + 3 * BS}, index})
    const d = await onDisk(file)
    assert.equal(d.h.diskSize, SIZE + 3 * BS)
    assert.equal(d.h.flags, HeaderFlag.INDEX_VALID | HeaderFlag.CLEAN_SHUTDOWN)
    assert.deepEqual([d.h.generation, d.h.lastSeq], [1, 4])
    assert.deepEqual((await rec.readIndex()).hashes, index)
  })

  it('scan result: changed blocks marked (newly counted), in-flight handed back and emptied, the stamp recorded', async () => {
    await rec.scanResult(bitmapOf([10]), stamp)
    await rec.freeze() // 10 in flight, as a dead push leaves it
    const newly = await rec.scanResult(bitmapOf([10, 11, BITS_PER_PAGE * 2]), {...stamp, ctimeNs: 5n})
    assert.equal(newly, 2, '10 was dirty already (in flight)')
    const d = await onDisk(file)
    assert.deepEqual([d.active, d.inflight], [[10, 11, BITS_PER_PAGE * 2], []])
    assert.equal(d.h.sourceCtimeNs, 5n)
    assert.ok(d.h.flags & HeaderFlag.CLEAN_SHUTDOWN)
  })

  it('mark untrusted: NEEDS_FULL_SYNC set and the index no longer trusted', async () => {
    await rec.provedSync({diskSize: SIZE, replicaSeq: 0, syncedMs: 1, commitId: CID, stamp})
    await rec.markUntrusted()
    const d = await onDisk(file)
    assert.equal(d.h.flags & (HeaderFlag.NEEDS_FULL_SYNC | HeaderFlag.INDEX_VALID), HeaderFlag.NEEDS_FULL_SYNC)
    assert.equal(rec.doubt(stamp, {trackerRunning: false})?.kind, 'marked-untrusted')
  })

  it('a record opened read-only cannot change the .psf', async () => {
    const ro = await ChangeRecord.openReadOnly(file)
    try {
      await assert.rejects(ro.beginCommit(1), /open read-only: only its owner writes it/)
      await assert.rejects(ro.writeIndexRun(0, Buffer.alloc(32)), /read-only/)
      assert.throws(() => ro.bitmapStore, /read-only/)
    } finally {
      await ro.close()
    }
    assert.equal((await onDisk(file)).h.pendingSeq, 0)
  })
})
