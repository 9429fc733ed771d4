// The group-committed change record: a newly dirtied block is durable in the .psf (read
// back through a second handle) by the time `mark` resolves; already-durable blocks cost
// nothing; marks that come during a batch's write go together in the next one; freeze and
// merge back keep every block dirty on disk in one bitmap or the other.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {Bitmap} from '../../../src/core/psf/bitmap.js'
import {BITS_PER_PAGE, Region} from '../../../src/core/psf/layout.js'
import {newHeader, PsfFile} from '../../../src/core/psf/psf-file.js'
import {DirtyLog} from '../../../src/core/tracker/dirty-log.js'
import type {ActivityLogImage} from '../../../src/core/psf/activity-log.js'
import {bytesCovered, nonEmptyPages, unionOf} from '../../../src/core/change-record/moves.js'
import {tempDir} from '../../helpers/disks.js'

const BS = 4096

async function makePsf(dir: string, diskSize: number): Promise<PsfFile> {
  const p = path.join(dir, 'disk.img.psf')
  await PsfFile.create(p, newHeader({diskSize, blockSize: BS, hashAlgo: 1, settings: {target: '/x', rpoSeconds: 900, fullsyncPort: 1, deltaPort: 2}}))
  return PsfFile.open(p)
}

async function onDisk(p: string, region: typeof Region.ACTIVE | typeof Region.INFLIGHT): Promise<number[]> {
  const psf = await PsfFile.open(p, false)
  try {
    return [...(await psf.readBitmap(region)).bitmap.setBlocks()]
  } finally {
    await psf.close()
  }
}

/** A PsfFile stand-in whose writes wait until released, recording every call. */
class GatedPsf {
  readonly path = '/fake.psf'
  readonly calls: Array<{region: number; pages: number[]}> = []
  private waiting: Array<() => void> = []
  hold = true
  async writeBitmap(region: number, _bm: Bitmap, pages?: Iterable<number>): Promise<void> {
    this.calls.push({region, pages: [...(pages ?? [])]})
    if (this.hold) await new Promise<void>((r) => this.waiting.push(r))
  }
  releaseAll(): void {
    const w = this.waiting
    this.waiting = []
    for (const r of w) r()
  }
}

const tick = () => new Promise((r) => setImmediate(r))

describe('tracker dirty log (group commit)', () => {
  let dir: string
  beforeEach(async () => {
    dir = await tempDir('vdrep-dirtylog-')
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('a newly dirtied block is durable in the .psf when mark resolves; a durable one returns undefined', async () => {
    const psf = await makePsf(dir, 3 * BITS_PER_PAGE * BS)
    const blocks = psf.layout.blockCount
    const log = new DirtyLog(psf, new Bitmap(blocks), new Bitmap(blocks))
    const p = log.mark(5, 7)
    assert.ok(p instanceof Promise)
    await p
    assert.deepEqual(await onDisk(psf.path, Region.ACTIVE), [5, 6, 7])
    assert.equal(log.mark(6, 6), undefined, 'an already durable block costs nothing')
    assert.equal(log.mark(5, 7), undefined)
    await log.mark(BITS_PER_PAGE + 1, BITS_PER_PAGE + 1) // second page
    assert.deepEqual(await onDisk(psf.path, Region.ACTIVE), [5, 6, 7, BITS_PER_PAGE + 1])
    assert.deepEqual(log.stats, {
      newlyDirtied: 4,
      batches: 2,
      pageWrites: 2,
      lazyFlushes: 0,
      alTransactions: 0,
      alHotted: 0,
      alEvicted: 0,
      alWaits: 0,
      alWaitMs: 0,
    })
    await psf.close()
  })

  it('marks arriving together share one batch; those arriving during a batch wait for the next one', async () => {
    const fake = new GatedPsf()
    const log = new DirtyLog(fake as unknown as PsfFile, new Bitmap(100_000), new Bitmap(100_000))
    const order: string[] = []
    const a = log.mark(1, 1)!.then(() => order.push('a'))
    const b = log.mark(2, 3)!.then(() => order.push('b'))
    const c = log.mark(BITS_PER_PAGE, BITS_PER_PAGE)!.then(() => order.push('c'))
    await tick()
    assert.equal(fake.calls.length, 1, 'one batch for the three')
    assert.deepEqual(fake.calls[0].pages.sort(), [0, 1])
    // While that batch is being written: a re-mark of a pending block waits for it too.
    const again = log.mark(2, 2)
    assert.ok(again instanceof Promise, 'a block whose bit is not durable yet must wait')
    const d = log.mark(10, 10)!.then(() => order.push('d'))
    const e = log.mark(11, 11)!.then(() => order.push('e'))
    await tick()
    assert.equal(fake.calls.length, 1, 'no second batch while the first is in flight')
    fake.releaseAll()
    await Promise.all([a, b, c, again])
    await tick()
    assert.equal(fake.calls.length, 2, 'd and e go together, right after')
    assert.deepEqual(fake.calls[1].pages, [0])
    fake.hold = false
    fake.releaseAll()
    await Promise.all([d, e])
    assert.deepEqual(order, ['a', 'b', 'c', 'd', 'e'])
    assert.equal(log.stats.batches, 2)
  })

  it('a failed .psf write fails the waiting marks and every later one (sticky)', async () => {
    const failing = {path: '/bad.psf', writeBitmap: async () => Promise.reject(Object.assign(new Error('EIO: i/o error'), {code: 'EIO'}))}
    const log = new DirtyLog(failing as unknown as PsfFile, new Bitmap(10), new Bitmap(10))
    await assert.rejects(log.mark(1, 1)!, /cannot update the change record in \/bad\.psf: EIO/)
    assert.ok(log.broken)
    await assert.rejects(log.mark(2, 2)!, /writes are refused from now on/)
    await assert.rejects(log.freeze(), /cannot update the change record/)
  })

  it('freeze: in-flight = active durable before active is cleared; merge back and clear', async () => {
    const psf = await makePsf(dir, 64 * BS)
    const log = new DirtyLog(psf, new Bitmap(64), new Bitmap(64))
    await log.mark(1, 3)
    const frozen = await log.freeze()
    assert.deepEqual([...frozen.setBlocks()], [1, 2, 3])
    assert.deepEqual(await onDisk(psf.path, Region.INFLIGHT), [1, 2, 3])
    assert.deepEqual(await onDisk(psf.path, Region.ACTIVE), [])
    frozen.set(40) // a copy: the caller cannot change the log
    assert.equal(log.inflight.get(40), false)
    await log.mark(3, 4) // written during the push
    assert.equal(await log.mergeBack(), 3)
    assert.deepEqual(await onDisk(psf.path, Region.ACTIVE), [1, 2, 3, 4])
    assert.deepEqual(await onDisk(psf.path, Region.INFLIGHT), [])
    await log.freeze()
    assert.equal(await log.clearInflight(), 4)
    assert.deepEqual(await onDisk(psf.path, Region.INFLIGHT), [])
    assert.deepEqual(await onDisk(psf.path, Region.ACTIVE), [])
    await psf.close()
  })

  it('merge back writes the active pages before clearing the in-flight ones', async () => {
    const fake = new GatedPsf()
    fake.hold = false
    const log = new DirtyLog(fake as unknown as PsfFile, new Bitmap(100), new Bitmap(100))
    log.inflight.set(7)
    await log.mergeBack()
    assert.deepEqual(
      fake.calls.map((c) => c.region),
      [Region.ACTIVE, Region.INFLIGHT],
    )
  })

  it('random ranges, concurrent: every resolved mark is durable, bits are exactly the union, counts exact', async () => {
    const blocks = 3 * BITS_PER_PAGE + 77
    const stored = new Uint8Array(Math.ceil(blocks / 8)) // what the fake .psf holds after its sync
    const psf = {
      path: '/fake.psf',
      async writeBitmap(_region: number, bm: Bitmap, pages?: Iterable<number>) {
        const copies = [...(pages ?? [])].map((p) => [p, bm.bits.slice((p * BITS_PER_PAGE) / 8, ((p + 1) * BITS_PER_PAGE) / 8)] as const)
        await new Promise((r) => setTimeout(r, Math.random() * 3))
        for (const [p, c] of copies) stored.set(c, (p * BITS_PER_PAGE) / 8)
      },
    }
    const log = new DirtyLog(psf as unknown as PsfFile, new Bitmap(blocks), new Bitmap(blocks))
    const model = new Bitmap(blocks)
    let seed = 12345
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed % n
    }
    const all: Promise<void>[] = []
    for (let round = 0; round < 300; round++) {
      const first = rnd(blocks)
      const len = rnd(4) === 0 ? rnd(70_000) + 1 : rnd(40) + 1
      const last = Math.min(blocks - 1, first + len - 1)
      model.setRange(first, last - first + 1)
      const done = log.mark(first, last)
      const check = () => {
        for (let b = first; b <= last; b++) assert.ok(stored[b >>> 3] & (1 << (b & 7)), `block ${b} resolved but is not durable`)
      }
      if (done === undefined) check()
      else all.push(done.then(check))
      if (rnd(5) === 0) await new Promise((r) => setImmediate(r))
    }
    await Promise.all(all)
    await log.settle()
    assert.deepEqual(log.active.bits, model.bits)
    assert.equal(log.stats.newlyDirtied, model.count())
    assert.deepEqual(stored, model.bits)
    // Everything is durable now: any range costs nothing.
    assert.equal(log.mark(0, blocks - 1) === undefined, model.count() === blocks)
  })

  it('a whole-disk trim is marked byte by byte with bounded memory, in one batch', async () => {
    const blocks = 16 * BITS_PER_PAGE + 3
    const fake = new GatedPsf()
    fake.hold = false
    const log = new DirtyLog(fake as unknown as PsfFile, new Bitmap(blocks), new Bitmap(blocks))
    log.active.set(5)
    // How long it takes is bench/marks-bench.ts; here, what it does.
    await log.mark(1, blocks - 1)
    assert.equal(log.active.count(), blocks - 1)
    assert.equal(log.active.get(0), false)
    assert.equal(log.stats.newlyDirtied, blocks - 2)
    assert.equal(fake.calls.length, 1)
    assert.equal(fake.calls[0].pages.length, 17)
    assert.equal(log.mark(1, blocks - 1), undefined)
  })

  it('helpers: non-empty pages, union, bytes covered with a short last block', () => {
    const bm = new Bitmap(3 * BITS_PER_PAGE)
    bm.set(0)
    bm.set(2 * BITS_PER_PAGE + 5)
    assert.deepEqual(nonEmptyPages(bm), [0, 2])
    const other = new Bitmap(3 * BITS_PER_PAGE)
    other.set(0)
    other.set(9)
    assert.equal(unionOf(bm, other).count(), 3)
    const small = new Bitmap(3)
    small.set(0)
    small.set(2)
    assert.equal(bytesCovered(small, 4096, 2 * 4096 + 100), 4096 + 100)
    assert.equal(bytesCovered(new Bitmap(3), 4096, 9000), 0)
  })

  it('with an activity log: a cold extent costs a log transaction and no bit write, a hot one nothing; eviction and flushAll make the bits durable', async () => {
    const p = path.join(dir, 'al.img.psf')
    await PsfFile.create(
      p,
      newHeader({
        diskSize: 64 * BS,
        blockSize: BS,
        hashAlgo: 1,
        settings: {target: '/x', rpoSeconds: 900, fullsyncPort: 1, deltaPort: 2},
        alExtents: 1,
        alExtentBytes: 16 * BS,
      }),
    )
    const psf = await PsfFile.open(p)
    const image = (await psf.readActivityLog()) as ActivityLogImage
    const log = new DirtyLog(psf, new Bitmap(64), new Bitmap(64), {al: {image, extentBlocks: 16, store: psf}})
    log.useLog = true
    const hotOnDisk = async () => {
      const r = await PsfFile.open(p, false)
      try {
        return [...((await r.readActivityLog()) as ActivityLogImage).slots]
      } finally {
        await r.close()
      }
    }
    try {
      await log.mark(3, 3)
      assert.deepEqual(await onDisk(p, Region.ACTIVE), [], 'the bit waits for the lazy flush')
      assert.deepEqual(await hotOnDisk(), [0], 'extent 0 is hot in the .psf')
      assert.equal(log.mark(5, 9), undefined, 'a hot extent: nothing to wait for')
      await log.mark(20, 20) // extent 1 evicts extent 0: its bits first (their page holds 20's too)
      assert.deepEqual(await onDisk(p, Region.ACTIVE), [3, 5, 6, 7, 8, 9, 20])
      assert.deepEqual(await hotOnDisk(), [1])
      await log.flushAll()
      assert.deepEqual(await onDisk(p, Region.ACTIVE), [3, 5, 6, 7, 8, 9, 20])
      assert.equal(log.stats.alTransactions, 2)
      assert.equal(log.stats.batches, 0)
      log.useLog = false
      await log.mark(40, 40) // without the log: the bit itself, durable first
      assert.deepEqual((await onDisk(p, Region.ACTIVE)).at(-1), 40)
    } finally {
      log.close()
      await psf.close()
    }
  })
})
