// The hash worker pool gives the bytes blockHasher gives on the main thread (random, zero,
// hole and short-last blocks, both algorithms), never keeps the process alive, and fails
// with a typed error when a worker dies. And `track --scan` marks the same blocks whether
// it hashes on the main thread or on the pool.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {VdrepError} from '../../../src/core/errors.js'
import {blockHasher, defaultHashAlgo, HASH_LENGTH, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {HashPool, HashWorkerError} from '../../../src/core/hash/hash-pool.js'
import {hashFileBlocks} from '../../../src/core/hash/range-hash.js'
import {DiskIoError} from '../../../src/core/errors.js'
import {Region} from '../../../src/core/psf/layout.js'
import {PsfFile, psfPathFor} from '../../../src/core/psf/psf-file.js'
import {scanDisk} from '../../../src/core/tracker/scan.js'
import {mapHashRunsAvailable} from '../../../src/core/native/hashing.js'
import {__setMappedHashingForTests} from '../../../src/core/disk/read-hash.js'
import {tempDir} from '../../helpers/disks.js'
import {blockIndex, psfWithIndex, TEST_HASH_KEY, writeAt, writeWithHole} from '../../helpers/scan-fixture.js'

const BS = 4096

function shared(n: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(n))
}

/** What the main thread computes: zero hash for holes and zero blocks, else the block hash. */

describe('hash worker pool', function () {
  this.timeout(60_000)
  const algos = [HashAlgo.SHA256, HashAlgo.BLAKE3, HashAlgo.XXH3]

  for (const algo of algos) {
    it(`algo ${algo}: random, zero, hole and short last blocks hash as blockHasher does`, async () => {
      const pool = new HashPool(algo, TEST_HASH_KEY, {workers: 2})
      try {
        const blocks = 37
        const len = blocks * BS - 1000 // short last block
        const data = shared(len)
        crypto.randomFillSync(data)
        data.fill(0, 5 * BS, 9 * BS) // zero blocks 5..8, read as data
        const holes = new Uint8Array(blocks)
        holes.fill(1, 20, 25) // holes 20..24: their bytes are not looked at (garbage here)
        holes[blocks - 1] = 0
        const got = await pool.hashBlocks(data, BS, holes)
        assert.equal(got.length, blocks * HASH_LENGTH)
        assert.deepEqual(got, blockIndex(algo, data, BS, holes))
        const h = blockHasher(algo, TEST_HASH_KEY)
        for (let i = 20; i < 25; i++) assert.deepEqual(got.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH), h.zeroHash(BS))
        // The last block is a short hole too.
        const lastHole = new Uint8Array(blocks)
        lastHole[blocks - 1] = 1
        const got2 = await pool.hashBlocks(data, BS, lastHole)
        assert.deepEqual(got2.subarray((blocks - 1) * HASH_LENGTH), h.zeroHash(len - (blocks - 1) * BS))
        assert.deepEqual(got2, blockIndex(algo, data, BS, lastHole))
      } finally {
        await pool.close()
      }
    })
  }

  it('hashes views at an offset of shared memory, many chunks at once, and plain (non-shared) buffers', async () => {
    const algo = defaultHashAlgo()
    const pool = new HashPool(algo, TEST_HASH_KEY, {workers: 3})
    try {
      const big = shared(40 * BS)
      crypto.randomFillSync(big)
      const views = [big.subarray(BS, 11 * BS), big.subarray(11 * BS + 7, 30 * BS), big.subarray(30 * BS)]
      const got = await Promise.all(views.map((v) => pool.hashBlocks(v, BS)))
      views.forEach((v, i) => assert.deepEqual(got[i], blockIndex(algo, v, BS)))
      const plain = crypto.randomBytes(3 * BS + 5)
      assert.deepEqual(await pool.hashBlocks(plain, BS), blockIndex(algo, plain, BS))
      assert.equal((await pool.hashBlocks(shared(0), BS)).length, 0)
      assert.deepEqual(await pool.hashBlocks(shared(10), BS), blockIndex(algo, Buffer.alloc(10), BS)) // one short zero block
    } finally {
      await pool.close()
    }
  })

  it('file chunks claimed from a shared counter by the workers and this thread hash as blockHasher does (holes, zeros, short last block)', async () => {
    const algo = defaultHashAlgo()
    const dir = await tempDir('vdrep-pool-file-')
    const file = path.join(dir, 'd.img')
    const blocks = 203
    const size = blocks * BS - 777
    const image = Buffer.alloc(size)
    crypto.randomFillSync(image, 0, 60 * BS)
    crypto.randomFillSync(image, 140 * BS, size - 140 * BS)
    image.fill(0, 150 * BS, 152 * BS) // zero blocks written as data
    await fs.writeFile(file, image.subarray(0, 60 * BS))
    await fs.truncate(file, size) // 60..139: a hole
    const fh = await fs.open(file, 'r+')
    await fh.write(image, 140 * BS, size - 140 * BS, 140 * BS)
    const pool = new HashPool(algo, TEST_HASH_KEY, {workers: 2})
    try {
      const range = {fd: fh.fd, path: file, size, bs: BS}
      const chunkBlocks = 8
      const counter = new Int32Array(new SharedArrayBuffer(4))
      const got = Buffer.alloc(blocks * HASH_LENGTH)
      const seen = new Uint8Array(blocks)
      const take = (first: number, count: number, hs: Buffer) => {
        hs.copy(got, first * HASH_LENGTH)
        seen.fill(seen[first] + 1, first, first + count)
      }
      const done = pool.hashFileChunks(range, chunkBlocks, counter, take)
      // This thread claims too, as the scan's main thread does.
      const buf = Buffer.alloc(chunkBlocks * BS)
      for (let first; (first = Atomics.add(counter, 0, 1) * chunkBlocks) < blocks;) {
        const count = Math.min(chunkBlocks, blocks - first)
        take(first, count, hashFileBlocks(range, first, count, blockHasher(algo, TEST_HASH_KEY), buf))
      }
      await done
      assert.ok(
        seen.every((x) => x === 1),
        'every block hashed exactly once',
      )
      assert.deepEqual(got, blockIndex(algo, image, BS))
    } finally {
      await pool.close()
      await fh.close()
      await fs.rm(dir, {recursive: true, force: true})
    }
  })

  it('a read error in a worker fails the file job with a DiskIoError naming the offset', async () => {
    const dir = await tempDir('vdrep-pool-eio-')
    const file = path.join(dir, 'd.img')
    await fs.writeFile(file, crypto.randomBytes(16 * BS))
    const fh = await fs.open(file, 'w') // write-only: reads fail with EBADF
    await fh.write(crypto.randomBytes(16 * BS), 0, 16 * BS, 0)
    const pool = new HashPool(defaultHashAlgo(), TEST_HASH_KEY, {workers: 1})
    try {
      const counter = new Int32Array(new SharedArrayBuffer(4))
      await assert.rejects(
        pool.hashFileChunks({fd: fh.fd, path: file, size: 16 * BS, bs: BS}, 4, counter, () => {}),
        (e: unknown) => e instanceof DiskIoError && /read error on .*d\.img at offset 0: EBADF/.test(e.message),
      )
      assert.equal(pool.broken, null, 'a read error is not a dead worker')
    } finally {
      await pool.close()
      await fh.close()
      await fs.rm(dir, {recursive: true, force: true})
    }
  })

  it('a worker that dies fails the jobs in flight and every later call with a typed error', async () => {
    const pool = new HashPool(defaultHashAlgo(), TEST_HASH_KEY, {workers: 2})
    const data = shared(256 * BS)
    crypto.randomFillSync(data)
    await pool.hashBlocks(data, BS) // both workers up
    // Kill one worker from outside, as an out-of-memory abort or a crash would, in the same tick
    // as a job is handed to it: the pool learns of the death only at the worker's exit event, so
    // the job is in flight. (Killed just after the job was posted, the worker sometimes finished
    // its 8 MiB first on a loaded machine, and the job rightly succeeded.)
    void (pool as unknown as {slots: Array<{worker: {terminate(): Promise<number>}}>}).slots[0].worker.terminate()
    const inFlight = pool.hashBlocks(data, BS)
    await assert.rejects(inFlight, (e: unknown) => e instanceof HashWorkerError && e instanceof VdrepError && e.code === 'HASH_WORKER' && e.exitCode === 1)
    assert.ok(pool.broken instanceof HashWorkerError)
    await assert.rejects(pool.hashBlocks(data, BS), HashWorkerError)
    await pool.close()
    await assert.rejects(pool.hashBlocks(data, BS), HashWorkerError)
  })

  it('does not keep the process alive when not closed', async () => {
    const poolUrl = new URL('../../../src/core/hash/hash-pool.js', import.meta.url).href
    const dir = await tempDir('vdrep-pool-exit-')
    const script = path.join(dir, 'no-close.mjs')
    await fs.writeFile(
      script,
      `const {HashPool} = await import(${JSON.stringify(poolUrl)})
      const pool = new HashPool(${HashAlgo.SHA256}, Buffer.alloc(16), {workers: 2})
      const data = Buffer.from(new SharedArrayBuffer(8 * 4096)).fill(7)
      const h = await pool.hashBlocks(data, 4096)
      console.log('hashed', h.length)
      `,
    )
    try {
      const r = spawnSync(process.execPath, [script], {encoding: 'utf8', timeout: 30_000})
      assert.equal(r.signal, null, 'the process had to be killed: the pool kept it alive')
      assert.equal(r.status, 0, r.stderr)
      assert.match(r.stdout, /hashed 256/)
    } finally {
      await fs.rm(dir, {recursive: true, force: true})
    }
  })
})

describe('track --scan on the hash pool', function () {
  this.timeout(60_000)
  let dir: string
  let disk: string
  let image: Buffer

  // Three 4 MiB read chunks: the first ends in a hole, the second is all hole, the third is
  // data with a short last block.
  const blocks = 2600
  const size = blocks * BS - 123
  const holeFrom = 1000
  const holeTo = 2100 // blocks [holeFrom, holeTo) are a hole

  beforeEach(async () => {
    dir = await tempDir('vdrep-scan-pool-')
    disk = path.join(dir, 'd.img')
    image = Buffer.alloc(size)
    crypto.randomFillSync(image, 0, holeFrom * BS)
    crypto.randomFillSync(image, holeTo * BS, size - holeTo * BS)
    await writeWithHole(disk, image, holeFrom * BS, holeTo * BS)
    await psfWithIndex(disk, image, BS, defaultHashAlgo())
    // xxh3 with the addon would checksum through a mapping, without workers: read, as with
    // blake3 or VDREP_NO_MMAP=1, so the pool is what is tested (the mapped scan is compared last).
    __setMappedHashingForTests(false)
  })
  afterEach(async () => {
    __setMappedHashingForTests(true)
    await fs.rm(dir, {recursive: true, force: true})
  })

  const write = (off: number, data: Buffer) => writeAt(disk, off, data)

  async function marked(): Promise<number[]> {
    const psf = await PsfFile.open(psfPathFor(disk), false)
    try {
      return [...(await psf.readBitmap(Region.ACTIVE)).bitmap.setBlocks()]
    } finally {
      await psf.close()
    }
  }

  it('marks the same blocks as the main-thread scan (data, hole written, data zeroed, short last block)', async () => {
    const unchanged = await scanDisk(disk, {hashWorkers: 2, workersOnly: true})
    assert.equal(unchanged.blocksMarked, 0)
    await write(3 * BS + 10, Buffer.from('abcd')) // random bytes before: differs but for a 2^-32 chance
    await write(1500 * BS, Buffer.from('hello')) // into the all-hole chunk
    await write(1010 * BS, Buffer.from('hello')) // into the hole that ends the first chunk
    await write(2200 * BS, Buffer.alloc(BS)) // data zeroed
    await write(size - 1, Buffer.from([image[size - 1] ^ 0xff])) // the short last block
    await write(20 * BS, image.subarray(20 * BS, 21 * BS)) // the same bytes: no change
    const pooled = await scanDisk(disk, {hashWorkers: 2, workersOnly: true})
    assert.equal(pooled.blocksScanned, blocks)
    assert.equal(pooled.blocksMarked, 5)
    assert.deepEqual(await marked(), [3, 1010, 1500, 2200, blocks - 1])
    const inline = await scanDisk(disk, {hashWorkers: 0})
    assert.equal(inline.blocksMarked, 5)
    assert.equal(inline.blocksNewlyMarked, 0)
    const mixed = await scanDisk(disk, {hashWorkers: 1}) // the main thread and a worker share the chunks
    assert.equal(mixed.blocksMarked, 5)
    assert.equal(mixed.blocksScanned, blocks)
    assert.equal(mixed.mapped, false)
    __setMappedHashingForTests(true)
    const mapped = await scanDisk(disk)
    assert.equal(mapped.mapped, defaultHashAlgo() === HashAlgo.XXH3 && mapHashRunsAvailable())
    assert.equal(mapped.blocksMarked, 5)
    assert.equal(mapped.blocksScanned, blocks)
    assert.deepEqual(await marked(), [3, 1010, 1500, 2200, blocks - 1])
  })
})
