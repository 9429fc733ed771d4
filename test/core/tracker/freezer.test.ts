// One point in time per push, in-process on a real file and .psf: while writes hammer the
// frozen blocks, every read returns the contents as of the freeze; ownership, the cap, and
// the end of a freeze behave as the control socket promises.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {Bitmap} from '../../../src/core/psf/bitmap.js'
import {Region} from '../../../src/core/psf/layout.js'
import {newHeader, PsfFile} from '../../../src/core/psf/psf-file.js'
import {DirtyLog} from '../../../src/core/tracker/dirty-log.js'
import {Freezer} from '../../../src/core/tracker/freezer.js'
import {FileBackend} from '../../../src/core/tracker/nbd/file-backend.js'
import {RecordingBackend} from '../../../src/core/tracker/recording-backend.js'
import {WriteGate} from '../../../src/core/tracker/write-gate.js'
import {tempDir} from '../../helpers/disks.js'

const BS = 4096
const BLOCKS = 64
const SIZE = BLOCKS * BS - 1000 // a short last block

describe('tracker freezer (copy-on-write point in time)', () => {
  let dir: string
  let psf: PsfFile
  let inner: FileBackend
  let log: DirtyLog
  let freezer: Freezer
  let backend: RecordingBackend
  let image: Buffer
  const warnings: string[] = []

  /** With readDelayMs, the freezer's reads of the disk take that long (a slow disk under a push's read). */
  async function setup(cowLimit = 1 << 20, readDelayMs = 0): Promise<void> {
    dir = await tempDir('vdrep-freezer-')
    const disk = path.join(dir, 'disk.img')
    image = crypto.randomBytes(SIZE)
    await fs.writeFile(disk, image)
    await PsfFile.create(
      `${disk}.psf`,
      newHeader({diskSize: SIZE, blockSize: BS, hashAlgo: 1, settings: {target: '/x', rpoSeconds: 900, fullsyncPort: 1, deltaPort: 2}}),
    )
    psf = await PsfFile.open(`${disk}.psf`)
    inner = await FileBackend.open(disk)
    log = new DirtyLog(psf, new Bitmap(BLOCKS), new Bitmap(BLOCKS))
    const gate = new WriteGate()
    warnings.length = 0
    const slow =
      readDelayMs > 0
        ? Object.assign(Object.create(inner) as FileBackend, {
            read: async (off: number, len: number) => {
              await new Promise((r) => setTimeout(r, readDelayMs))
              return inner.read(off, len)
            },
          })
        : inner
    freezer = new Freezer(
      log,
      gate,
      slow,
      {blockSize: BS, diskSize: SIZE, blockCount: BLOCKS},
      {cowPath: `${disk}.vdrep.cow`, cowLimit, log: (_l, line) => warnings.push(line)},
    )
    backend = new RecordingBackend(inner, log, gate, freezer, BS)
  }

  afterEach(async () => {
    await inner.close()
    await psf.close()
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('reads return the frozen contents while writes to the same blocks run concurrently', async () => {
    await setup()
    // Dirty every block, then freeze them all.
    await backend.write(0, Buffer.from(image), false)
    const frozen = await freezer.freeze(1)
    assert.equal(frozen.count(), BLOCKS)
    const writes: Promise<void>[] = []
    const reads: Promise<void>[] = []
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 8; i++) {
        const off = Math.floor(Math.random() * (SIZE - 9000))
        writes.push(backend.write(off, crypto.randomBytes(1 + Math.floor(Math.random() * 9000)), false))
        writes.push(backend.writeZeroes(Math.floor(Math.random() * (SIZE - 5000)), 4999, {fua: false, noHole: false}))
      }
      const first = Math.floor(Math.random() * (BLOCKS - 8))
      reads.push(
        freezer.read(1, first, 8).then((data) => {
          const want = image.subarray(first * BS, Math.min(SIZE, (first + 8) * BS))
          assert.ok(data.equals(want), `blocks ${first}..${first + 7} are not as of the freeze`)
        }),
      )
    }
    await Promise.all([...writes, ...reads])
    const all = await freezer.read(1, 0, BLOCKS)
    assert.ok(all.equals(image), 'the whole frozen set is not as of the freeze')
    assert.equal(all.length, SIZE)
    // Blocks written since the freeze are in the active set for the next push.
    assert.ok(log.active.count() > 0)
    assert.deepEqual(await freezer.complete(1, true), {cleared: BLOCKS, mergedBack: 0})
    assert.equal(log.inflight.count(), 0)
    await assert.rejects(fs.stat(path.join(dir, 'disk.img.vdrep.cow')), /ENOENT/)
  })

  it('a group cut (holdMs): writes wait until release, and the lease lets them go if release never comes', async () => {
    await setup()
    await backend.write(0, Buffer.alloc(10, 1), false)
    await freezer.freeze(1, true, 5_000)
    let landed = false
    const w = backend.write(BS * 3, Buffer.alloc(100, 2), false).then(() => (landed = true))
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(landed, false, 'a write that started after the cut gets no completion while held')
    const out = freezer.release(1)
    assert.equal(out.held, true)
    assert.equal(out.expired, false)
    await w
    assert.equal(landed, true)
    assert.deepEqual(await freezer.complete(1, true), {cleared: 1, mergedBack: 0})
    // A lease that runs out: writes resume by themselves, and the release says the cut is void.
    await freezer.freeze(1, true, 150)
    const late = backend.write(BS * 5, Buffer.alloc(100, 3), false)
    await late
    assert.equal(freezer.release(1).expired, true)
    assert.match(warnings.join('\n'), /longer than its 150 ms lease/)
    await freezer.complete(1, false)
  })

  it('a group cut whose owner hangs up is released at once and its blocks handed back', async () => {
    await setup()
    await backend.write(0, Buffer.alloc(10, 1), false)
    await freezer.freeze(1, true, 10_000)
    const w = backend.write(BS * 7, Buffer.alloc(100, 4), false)
    freezer.ownerGone(1)
    const t0 = Date.now()
    await w
    assert.ok(Date.now() - t0 < 1000, 'the held write went on when the owner left')
    await freezer.idle()
    assert.equal(log.inflight.count(), 0)
    assert.ok(log.active.get(0) && log.active.get(7))
  })

  it('only the owner reads or completes; a second freeze is refused while one is held', async () => {
    await setup()
    await backend.write(0, Buffer.alloc(10, 1), false)
    await freezer.freeze(1)
    await assert.rejects(freezer.freeze(2), /another client holds the freeze/)
    await assert.rejects(freezer.read(2, 0, 1), /belongs to another control connection/)
    await assert.rejects(freezer.complete(2, true), /belongs to another control connection/)
    await assert.rejects(freezer.read(1, 1, 1), /block 1 is not in the frozen set/)
    await assert.rejects(freezer.read(1, 63, 2), /outside the disk's 64 blocks/)
    await assert.rejects(freezer.read(1, 0, 9000), /outside the disk|limit of one read/)
    freezer.ownerGone(2) // not the owner: nothing happens
    assert.ok(freezer.active)
    freezer.ownerGone(1)
    // The warning follows the hand-back (a then() after it): wait for both, by a deadline (50 polls
    // of 10 ms once ended between the two on a loaded machine).
    const handedBack = () => /disconnected without completing/.test(warnings.join('\n'))
    for (const until = Date.now() + 10_000; (freezer.active || !handedBack()) && Date.now() < until;) await new Promise((r) => setTimeout(r, 10))
    assert.equal(freezer.active, false)
    assert.deepEqual([...log.active.setBlocks()], [0])
    assert.match(warnings.join('\n'), /disconnected without completing; 1 blocks were handed back/)
    await assert.rejects(freezer.read(1, 0, 1), /no freeze is held/)
  })

  it('the cap cancels the freeze; the write goes through; the blocks go back to the active set', async () => {
    await setup(2 * BS)
    await backend.write(0, Buffer.alloc(4 * BS, 1), false)
    await freezer.freeze(7)
    await backend.write(0, Buffer.alloc(BS, 2), false) // fits
    await backend.write(BS, Buffer.alloc(3 * BS, 3), false) // would pass the cap
    assert.ok((await inner.read(BS, 3 * BS)).every((b) => b === 3))
    await assert.rejects(freezer.read(7, 0, 1), /freeze was cancelled: the copy-on-write side file reached its limit of 8 KiB/)
    for (let i = 0; i < 50 && freezer.active; i++) await new Promise((r) => setTimeout(r, 10))
    assert.deepEqual([...log.active.setBlocks()], [0, 1, 2, 3])
    assert.equal(log.inflight.count(), 0)
    assert.match(warnings.join('\n'), /reached its limit of 8 KiB/)
    // Persisted: active has them, in-flight is empty.
    const back = await PsfFile.open(psf.path, false)
    assert.deepEqual([...(await back.readBitmap(Region.ACTIVE)).bitmap.setBlocks()], [0, 1, 2, 3])
    assert.equal((await back.readBitmap(Region.INFLIGHT)).bitmap.count(), 0)
    await back.close()
  })

  it('a freeze without preserve keeps no copies and refuses reads; writes go to the next set', async () => {
    await setup(BS)
    await backend.write(0, Buffer.alloc(4 * BS, 1), false)
    await freezer.freeze(4, false)
    await backend.write(0, Buffer.alloc(4 * BS, 2), false) // over the cap if it were copying
    assert.ok(freezer.active)
    assert.equal(freezer.info?.cowBytes, 0)
    await assert.rejects(freezer.read(4, 0, 1), /keeps no old contents/)
    assert.deepEqual(await freezer.complete(4, true), {cleared: 4, mergedBack: 0})
    assert.deepEqual([...log.active.setBlocks()], [0, 1, 2, 3])
  })

  it('a read under way when the freeze is cancelled fails rather than return a block written after the freeze', async () => {
    await setup(0, 300) // no room for old contents: the first write to a frozen block cancels
    await backend.write(0, Buffer.from(image), false)
    await freezer.freeze(5)
    const read = freezer.read(5, 8, 4).then(
      (d) => d,
      (err: Error) => err,
    )
    await new Promise((r) => setTimeout(r, 20)) // the read is past its first check, reading
    // The first write cancels the freeze; the second (queued behind it in the gate, inside the
    // read's range) then finds the freeze cancelled, takes no range lock, and lands at once.
    const w1 = backend.write(0, Buffer.alloc(BS, 0xaa), false)
    await new Promise((r) => setImmediate(r))
    await new Promise((r) => setImmediate(r))
    const w2 = backend.write(9 * BS, Buffer.alloc(BS, 0xbb), false)
    await Promise.all([w1, w2])
    assert.ok(
      (await inner.read(9 * BS, BS)).every((b) => b === 0xbb),
      'the second write landed while the read ran',
    )
    const got = await read
    if (got instanceof Error) assert.match(got.message, /freeze was cancelled/)
    else assert.ok(got.subarray(BS, 2 * BS).equals(image.subarray(9 * BS, 10 * BS)), 'the read returned block 9 as written after the freeze')
    assert.ok(got instanceof Error, 'a read that overlapped the cancel must fail')
  })

  it('complete(true) is refused after a cancel; complete(false) then succeeds', async () => {
    await setup(BS)
    await backend.write(0, Buffer.alloc(2 * BS, 1), false)
    await freezer.freeze(3)
    await backend.write(0, Buffer.alloc(2 * BS, 2), false)
    await assert.rejects(freezer.complete(3, true), /freeze was cancelled: the copy-on-write side file reached its limit/)
    assert.deepEqual(await freezer.complete(3, false), {cleared: 0, mergedBack: 0})
    await assert.rejects(freezer.read(3, 0, 1), /freeze was cancelled/)
    assert.equal(freezer.active, false)
    assert.deepEqual([...log.active.setBlocks()], [0, 1])
    // The next freeze starts afresh.
    await freezer.freeze(3)
    assert.equal((await freezer.read(3, 0, 2)).length, 2 * BS)
    assert.deepEqual(await freezer.complete(3, true), {cleared: 2, mergedBack: 0})
  })
})
