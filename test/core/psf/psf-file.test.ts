// Tests of src/core/psf/psf-file.ts on real files in a temp folder: create and open, header
// updates alternating slots, every header byte flipped (one slot falls back, both refuse),
// truncated and foreign files, bitmaps with a corrupt page, and the hash index.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import zlib from 'node:zlib'
import {StateError} from '../../../src/core/errors.js'
import {Bitmap} from '../../../src/core/psf/bitmap.js'
import {HeaderFlag} from '../../../src/core/psf/header.js'
import {BITS_PER_PAGE, HASHES_PER_PAGE, PAGE_SIZE, Region, SLOT_SIZE} from '../../../src/core/psf/layout.js'
import {newHeader, PsfFile, psfPathFor, type PsfInit} from '../../../src/core/psf/psf-file.js'

const settings = {target: 'backup@replica:/srv/d.img', rpoSeconds: 900, fullsyncPort: 31031, deltaPort: 44046}
const SMALL: PsfInit = {diskSize: 10 * 65536, blockSize: 65536, hashAlgo: 2, settings, replicaId: Buffer.alloc(16, 0xab)}
/** 40000 blocks: two bitmap pages (the second partly used), 315 index pages. */
const BIG: PsfInit = {...SMALL, diskSize: 40000 * 4096, blockSize: 4096}

let dir: string
let file: string

async function withOpen<T>(fn: (psf: PsfFile) => Promise<T>, writable = true): Promise<T> {
  const psf = await PsfFile.open(file, writable)
  try {
    return await fn(psf)
  } finally {
    await psf.close()
  }
}

async function rejectsWith(code: string): Promise<void> {
  await assert.rejects(PsfFile.open(file), (e: unknown) => e instanceof StateError && e.code === code)
}

describe('psf file', () => {
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vdrep-psf-'))
    file = psfPathFor(path.join(dir, 'disk.img'))
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('names the state file beside the disk', () => {
    assert.equal(psfPathFor('/vm/disk.img'), '/vm/disk.img.psf')
  })

  it('creates a file of the layout size, mode 0600, that opens to the same header in slot A', async () => {
    const header = newHeader(SMALL)
    await PsfFile.create(file, header)
    const st = await fs.stat(file)
    assert.equal(st.size, 20480 + 2 * 4096, 'and two pages of activity log')
    assert.equal(st.mode & 0o777, 0o600)
    await withOpen(async (psf) => {
      assert.deepEqual(psf.header, header)
      assert.equal(psf.layout.blockCount, 10)
      const {bitmap, badPages} = await psf.readBitmap(Region.ACTIVE)
      assert.deepEqual(badPages, [])
      assert.equal(bitmap.isEmpty(), true)
    })
    const raw = await fs.readFile(file)
    assert.deepEqual(raw.subarray(0, 8), Buffer.from('VDREPPSF'))
    assert.deepEqual(raw.subarray(0, SLOT_SIZE), raw.subarray(SLOT_SIZE, 2 * SLOT_SIZE))
  })

  it('creates a file with initial bitmaps', async () => {
    const active = new Bitmap(40000)
    active.set(0)
    active.set(39999)
    const inflight = new Bitmap(40000)
    inflight.setRange(32000, 1000)
    await PsfFile.create(file, newHeader(BIG), {active, inflight})
    await withOpen(async (psf) => {
      assert.deepEqual([...(await psf.readBitmap(Region.ACTIVE)).bitmap.setBlocks()], [0, 39999])
      assert.equal((await psf.readBitmap(Region.INFLIGHT)).bitmap.count(), 1000)
    })
  })

  it('writes each header update to the older slot and reads the newest back', async () => {
    await PsfFile.create(file, newHeader(SMALL))
    await withOpen(async (psf) => {
      assert.equal((await psf.updateHeader({lastSeq: 5})).counter, 2n)
      await psf.updateHeader({generation: 9})
    })
    const raw = await fs.readFile(file)
    assert.equal(raw.readBigUInt64LE(16), 3n, 'slot A holds counter 3')
    assert.equal(raw.readBigUInt64LE(SLOT_SIZE + 16), 2n, 'slot B holds counter 2')
    await withOpen(async (psf) => {
      assert.equal(psf.header.counter, 3n)
      assert.equal(psf.header.lastSeq, 5)
      assert.equal(psf.header.generation, 9)
    })
  })

  it('a function patch changes the flags as they are on disk, keeping a bit another handle set meanwhile', async () => {
    const BOTH = HeaderFlag.CLEAN_SHUTDOWN | HeaderFlag.INDEX_VALID
    await PsfFile.create(file, newHeader(SMALL))
    const stale = await PsfFile.open(file)
    try {
      await withOpen((other) => other.updateHeader((cur) => ({flags: cur.flags | HeaderFlag.CLEAN_SHUTDOWN}))) // as a tracker's clean stop
      await stale.updateHeader((cur) => ({flags: cur.flags | HeaderFlag.INDEX_VALID, lastSeq: 3}))
      assert.equal(stale.header.flags & BOTH, BOTH, 'both bits')
      assert.equal(stale.header.lastSeq, 3)
    } finally {
      await stale.close()
    }
    await withOpen(async (psf) => assert.equal(psf.header.flags & BOTH, BOTH))
  })

  // With the addon the header lock is an OFD record lock; without it (VDREP_NO_NATIVE=1) the
  // portable lock of src/core/locks/portable-lock.ts, which must exclude just as well.
  for (const noNative of ['0', '1']) {
    it(`header updates from two processes at once are all kept (no update is lost to the other's write; VDREP_NO_NATIVE=${noNative})`, async function () {
      this.timeout(60_000)
      await PsfFile.create(file, newHeader(SMALL))
      const moduleUrl = new URL('../../../src/core/psf/psf-file.js', import.meta.url).href
      const N = 40
      // Each process counts its own field up, one read-modify-write at a time.
      const worker = (field: 'generation' | 'lastSeq') =>
        new Promise<void>((resolve, reject) => {
          const code = `const {PsfFile} = await import(${JSON.stringify(moduleUrl)}); const p = await PsfFile.open(${JSON.stringify(file)}); for (let i = 0; i < ${N}; i++) await p.updateHeader((c) => ({${field}: c.${field} + 1})); await p.close()`
          const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
            stdio: ['ignore', 'ignore', 'pipe'],
            env: {...process.env, VDREP_NO_NATIVE: noNative},
          })
          let err = ''
          child.stderr.on('data', (d: Buffer) => (err += d.toString()))
          child.on('close', (c) => (c === 0 ? resolve() : reject(new Error(`worker exited ${c}: ${err}`))))
        })
      await Promise.all([worker('generation'), worker('lastSeq')])
      await withOpen(async (psf) => {
        assert.equal(psf.header.generation, N, 'generation updates lost')
        assert.equal(psf.header.lastSeq, N, 'lastSeq updates lost')
        assert.equal(psf.header.counter, BigInt(2 * N + 1))
      })
    })
  }

  it('refuses a missing file with PSF_MISSING and a directory with PSF_FOREIGN or PSF_UNREADABLE', async () => {
    await rejectsWith('PSF_MISSING')
    await fs.mkdir(file)
    await rejectsWith('PSF_UNREADABLE')
    await assert.rejects(PsfFile.open(file, false), {code: 'PSF_FOREIGN'})
  })

  it('refuses a file that is not a .psf with PSF_FOREIGN', async () => {
    await fs.writeFile(file, Buffer.alloc(20480, 'not a psf, just text. '))
    await rejectsWith('PSF_FOREIGN')
    await fs.writeFile(file, 'short but foreign')
    await rejectsWith('PSF_FOREIGN')
  })

  it('refuses the file cut at every length short of the layout with PSF_CORRUPT', async () => {
    await PsfFile.create(file, newHeader(SMALL))
    const whole = await fs.readFile(file)
    // every length around the edges (magic, each slot's end), a stride through the rest
    const edges = [0, 8, SLOT_SIZE, SLOT_SIZE + 8, 2 * SLOT_SIZE, whole.length].flatMap((e) => Array.from({length: 24}, (_, k) => e - 12 + k))
    const lengths = new Set([...edges, ...Array.from({length: whole.length / 13}, (_, k) => k * 13)])
    for (const n of [...lengths].filter((k) => k >= 0 && k < whole.length)) {
      await fs.writeFile(file, whole.subarray(0, n))
      await rejectsWith('PSF_CORRUPT')
    }
  })

  it('falls back to the older slot when any byte of the current slot is flipped; refuses when both are', async () => {
    await PsfFile.create(file, newHeader(SMALL))
    await withOpen((psf) => psf.updateHeader({lastSeq: 77}))
    const fh = await fs.open(file, 'r+')
    const one = Buffer.alloc(1)
    const flip = async (pos: number) => {
      await fh.read(one, 0, 1, pos)
      one[0] ^= 0xff
      await fh.write(one, 0, 1, pos)
    }
    try {
      for (let i = 0; i < SLOT_SIZE; i++) {
        await flip(SLOT_SIZE + i)
        const h = await withOpen(async (psf) => psf.header, false)
        assert.equal(h.counter, 1n, `byte ${i}`)
        assert.equal(h.lastSeq, 0, `byte ${i}`)
        await flip(i)
        await assert.rejects(
          PsfFile.open(file, false),
          (e: unknown) => e instanceof StateError && e.code === (i < 8 ? 'PSF_FOREIGN' : 'PSF_CORRUPT'),
          `byte ${i}`,
        )
        await flip(i)
        await flip(SLOT_SIZE + i)
      }
    } finally {
      await fh.close()
    }
    await withOpen(async (psf) => assert.equal(psf.header.lastSeq, 77))
  })

  it('marks every block of a corrupt bitmap page dirty and lists the page, leaving the others', async () => {
    await PsfFile.create(file, newHeader(BIG))
    const active = new Bitmap(40000)
    active.set(5)
    active.set(BITS_PER_PAGE + 3)
    await withOpen(async (psf) => {
      await psf.writeBitmap(Region.ACTIVE, active)
      const off = psf.layout.regionOffset[Region.ACTIVE] + PAGE_SIZE + 100
      const raw = await fs.open(file, 'r+')
      await raw.write(Buffer.from([0x55]), 0, 1, off)
      await raw.close()
      const {bitmap, badPages} = await psf.readBitmap(Region.ACTIVE)
      assert.deepEqual(badPages, [1])
      assert.equal(bitmap.get(5), true)
      assert.equal(bitmap.get(6), false)
      assert.equal(bitmap.count(), 1 + (40000 - BITS_PER_PAGE))
      assert.deepEqual((await psf.readBitmap(Region.INFLIGHT)).badPages, [])
    })
  })

  it('treats a page copied from another region or position as corrupt', async () => {
    await PsfFile.create(file, newHeader(BIG))
    await withOpen(async (psf) => {
      const l = psf.layout
      const page = Buffer.alloc(PAGE_SIZE)
      await fs.readFile(file).then((b) => b.copy(page, 0, l.regionOffset[Region.ACTIVE], l.regionOffset[Region.ACTIVE] + PAGE_SIZE))
      const raw = await fs.open(file, 'r+')
      await raw.write(page, 0, PAGE_SIZE, l.regionOffset[Region.INFLIGHT])
      await raw.write(page, 0, PAGE_SIZE, l.regionOffset[Region.ACTIVE] + PAGE_SIZE)
      await raw.close()
      assert.deepEqual((await psf.readBitmap(Region.INFLIGHT)).badPages, [0])
      assert.deepEqual((await psf.readBitmap(Region.ACTIVE)).badPages, [1])
    })
  })

  it('writes only the bitmap pages asked for', async () => {
    await PsfFile.create(file, newHeader(BIG))
    const bm = new Bitmap(40000)
    bm.set(1)
    bm.set(BITS_PER_PAGE + 1)
    await withOpen(async (psf) => {
      await psf.writeBitmap(Region.INFLIGHT, bm, [1])
      assert.deepEqual([...(await psf.readBitmap(Region.INFLIGHT)).bitmap.setBlocks()], [BITS_PER_PAGE + 1])
    })
  })

  it('writes index pages and reads them back; a corrupt index page is listed and reads as zeros', async () => {
    await PsfFile.create(file, newHeader(BIG))
    const hashes = Buffer.alloc(300 * 32)
    for (let i = 0; i < hashes.length; i++) hashes[i] = (i * 7 + 3) & 0xff
    await withOpen(async (psf) => {
      const empty = await psf.readIndex()
      assert.equal(empty.hashes.length, 40000 * 32)
      assert.ok(empty.hashes.every((b) => b === 0))
      await psf.writeIndexPages(0, hashes)
      await psf.writeIndexPages(HASHES_PER_PAGE * 314, Buffer.alloc((40000 - HASHES_PER_PAGE * 314) * 32, 0xee))
      await psf.sync()
      const {hashes: back, badPages} = await psf.readIndex()
      assert.deepEqual(badPages, [])
      assert.deepEqual(back.subarray(0, hashes.length), hashes)
      assert.ok(back.subarray(HASHES_PER_PAGE * 314 * 32).every((b) => b === 0xee))
      const raw = await fs.open(file, 'r+')
      await raw.write(Buffer.from([0]), 0, 1, psf.layout.regionOffset[Region.INDEX] + PAGE_SIZE + 12)
      await raw.close()
      const bad = await psf.readIndex()
      assert.deepEqual(bad.badPages, [1])
      assert.ok(bad.hashes.subarray(HASHES_PER_PAGE * 32, 2 * HASHES_PER_PAGE * 32).every((b) => b === 0))
      assert.deepEqual(bad.hashes.subarray(0, HASHES_PER_PAGE * 32), hashes.subarray(0, HASHES_PER_PAGE * 32))
      await assert.rejects(psf.writeIndexPages(5, hashes), RangeError)
    })
  })

  it('updates scattered index entries in few calls, keeping every other entry and a bad untouched page as they were', async () => {
    await PsfFile.create(file, newHeader(BIG))
    const base = Buffer.alloc(40000 * 32)
    for (let i = 0; i < base.length; i++) base[i] = (i * 13 + 5) & 0xff
    const hashOf = (b: number) => Buffer.alloc(32, (b % 250) + 1)
    // Runs of close pages, a far gap, a run longer than one call, and page 7 left untouched but corrupt.
    const blocks = [0, 1, HASHES_PER_PAGE * 3 + 2, HASHES_PER_PAGE * 6, HASHES_PER_PAGE * 8 + 9, HASHES_PER_PAGE * 100]
    for (let p = 20; p < 314; p += 2) blocks.push(p * HASHES_PER_PAGE + (p % HASHES_PER_PAGE))
    blocks.push(39999)
    const update = new Map(blocks.map((b) => [b, hashOf(b)]))
    await withOpen(async (psf) => {
      await psf.writeIndexPages(0, base)
      const raw = await fs.open(file, 'r+')
      const badAt = psf.layout.regionOffset[Region.INDEX] + 7 * PAGE_SIZE + 40
      await raw.write(Buffer.from([0x5a]), 0, 1, badAt)
      const pageBefore = Buffer.alloc(PAGE_SIZE)
      await raw.read(pageBefore, 0, PAGE_SIZE, psf.layout.regionOffset[Region.INDEX] + 7 * PAGE_SIZE)
      // Count the calls that reach the file.
      const proto = Object.getPrototypeOf(raw) as {read: (...a: unknown[]) => unknown; write: (...a: unknown[]) => unknown}
      const {read, write} = proto
      let calls = 0
      proto.read = function (this: unknown, ...a: unknown[]) {
        calls++
        return read.apply(this, a)
      }
      proto.write = function (this: unknown, ...a: unknown[]) {
        calls++
        return write.apply(this, a)
      }
      try {
        await psf.updateIndexBlocks(update)
      } finally {
        proto.read = read
        proto.write = write
      }
      assert.ok(calls <= 12, `${calls} reads and writes for ${update.size} blocks on ${new Set(blocks.map((b) => Math.floor(b / HASHES_PER_PAGE))).size} pages`)
      const pageAfter = Buffer.alloc(PAGE_SIZE)
      await raw.read(pageAfter, 0, PAGE_SIZE, psf.layout.regionOffset[Region.INDEX] + 7 * PAGE_SIZE)
      await raw.close()
      assert.deepEqual(pageAfter, pageBefore, 'the untouched bad page was rewritten')
      const {hashes: back, badPages} = await psf.readIndex()
      assert.deepEqual(badPages, [7])
      const want = Buffer.from(base)
      want.fill(0, 7 * HASHES_PER_PAGE * 32, 8 * HASHES_PER_PAGE * 32)
      for (const [b, h] of update) h.copy(want, b * 32)
      assert.ok(back.equals(want), 'index entries differ from the expected ones')
    })
  })

  it('a format-2 record is migrated by its owner on open (activity log added, bitmaps and index kept); a read-only open leaves it as it is', async () => {
    await PsfFile.create(file, newHeader(SMALL))
    await withOpen(async (psf) => {
      const bm = new Bitmap(psf.layout.blockCount)
      bm.set(3)
      await psf.writeBitmap(Region.ACTIVE, bm)
      await psf.writeIndexPages(0, Buffer.alloc(10 * 32, 0x5a))
      await psf.sync()
    })
    // Made format 2 by hand: version 2, the log's header bytes zero, the file cut before the log.
    const fh = await fs.open(file, 'r+')
    for (const at of [0, SLOT_SIZE]) {
      const slot = Buffer.alloc(SLOT_SIZE)
      await fh.read(slot, 0, SLOT_SIZE, at)
      slot.writeUInt16LE(2, 8)
      slot.writeUInt16LE(0, 10)
      slot.writeUInt8(0, 37)
      slot.writeUInt32LE(zlib.crc32(slot.subarray(0, SLOT_SIZE - 4)), SLOT_SIZE - 4)
      await fh.write(slot, 0, SLOT_SIZE, at)
    }
    await fh.truncate(20480)
    await fh.close()
    await withOpen(async (psf) => {
      assert.equal(psf.header.alExtents, 0)
      assert.equal(psf.migrated, false)
      assert.match((await psf.readActivityLog()) as string, /no activity log/)
    }, false)
    assert.equal((await fs.stat(file)).size, 20480, 'a reader changes nothing')
    await withOpen(async (psf) => {
      assert.equal(psf.migrated, true)
      assert.equal(psf.header.alExtents, 2026)
      assert.equal(psf.header.alExtentShift, 22)
    })
    assert.equal((await fs.stat(file)).size, 20480 + 2 * PAGE_SIZE)
    await withOpen(async (psf) => {
      assert.equal(psf.migrated, false, 'once')
      const log = await psf.readActivityLog()
      assert.ok(typeof log !== 'string' && log.seq === 0 && log.slots.every((e) => e === 0xffffffff))
      assert.deepEqual([...(await psf.readBitmap(Region.ACTIVE)).bitmap.setBlocks()], [3])
      assert.ok((await psf.readIndex()).hashes.equals(Buffer.alloc(10 * 32, 0x5a)))
    }, false)
    const slotA = Buffer.alloc(10)
    const rd = await fs.open(file, 'r')
    await rd.read(slotA, 0, 10, SLOT_SIZE) // the migration's header went to slot B
    await rd.close()
    assert.equal(slotA.readUInt16LE(8), 3)
  })
})
