// ChunkReader.fill of a few blocks reads them on the calling thread (read-hash.ts,
// readAndHashRunsNow): they were just hashed through a mapping, so they are in the page cache,
// and a trip through the thread pool waited behind the chunks ahead (ms each on a busy host,
// ~120 of them in a row in a 1% seed sync of 1 GiB). Same bytes and checksums either way.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {ChunkReader} from '../../../src/core/disk/chunk-reader.js'
import {mapAndHashRuns, READ_NOW_MAX_BYTES, readAndHashRuns, readAndHashRunsNow, sumOf} from '../../../src/core/disk/read-hash.js'
import {blockHasher, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {seededBytes, tempDir} from '../../helpers/disks.js'

const BS = 64 * 1024
const MiB = 1 << 20

describe('ChunkReader.fill: a few blocks read on this thread', () => {
  let dir: string
  let file: string
  let fh: fs.FileHandle
  // Data, one all-zero block (index 3), and a short last block.
  const data = Buffer.concat([seededBytes('fill-now', 3 * BS), Buffer.alloc(BS), seededBytes('fill-now-2', 2 * BS + 1000)])
  const hasher = blockHasher(HashAlgo.XXH3, Buffer.alloc(16, 9))
  const disk = () => ({fd: fh.fd, directReads: true, readAt: (b: Buffer, len: number, pos: number) => fh.read(b, 0, len, pos).then(() => b)})

  before(async () => {
    dir = await tempDir()
    file = path.join(dir, 'disk.img')
    await fs.writeFile(file, data)
    fh = await fs.open(file, 'r')
  })
  after(async () => {
    await fh.close()
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('gives the bytes and checksums the thread pool gives', async () => {
    const runs: Array<[number, number]> = [
      [1, 4],
      [5, 7],
    ]
    const a = Buffer.alloc(7 * BS)
    const b = Buffer.alloc(7 * BS)
    const now = readAndHashRunsNow(disk(), hasher, a, runs, 0, data.length, BS)
    const pooled = await readAndHashRuns(disk(), hasher, b, runs, 0, data.length, BS)
    assert.ok(now)
    assert.deepEqual([...now.zero], [...pooled.zero])
    assert.equal(now.zero[3], 1, 'the all-zero block has no checksum')
    for (const i of [1, 2, 4, 5, 6]) assert.deepEqual(sumOf(now, i), sumOf(pooled, i), `block ${i}`)
    assert.ok(a.subarray(BS, data.length).equals(b.subarray(BS, data.length)))
  })

  it('does not apply to reads through readAt, to more than READ_NOW_MAX_BYTES, or past the end', () => {
    const buf = Buffer.alloc(READ_NOW_MAX_BYTES + BS)
    assert.equal(readAndHashRunsNow({...disk(), directReads: false}, hasher, buf, [[0, 1]], 0, data.length, BS), undefined)
    const blocks = READ_NOW_MAX_BYTES / BS + 1
    assert.equal(readAndHashRunsNow(disk(), hasher, buf, [[0, blocks]], 0, blocks * BS, BS), undefined)
    // The chunk says 8 blocks, the file has fewer (it shrank): readAndHashRuns reports that.
    assert.equal(readAndHashRunsNow(disk(), hasher, buf, [[7, 8]], 0, 8 * BS, BS), undefined)
  })

  it('does not wait for a busy thread pool', async function () {
    this.timeout(30_000)
    const d = disk()
    if (!(await mapAndHashRuns(d, hasher, [[0, 1]], 0, BS, BS))) this.skip() // no addon: no mapped chunks
    const reader = new ChunkReader(d, data.length, BS, MiB, Number.POSITIVE_INFINITY, hasher, () => true)
    for await (const chunk of reader.chunks()) {
      assert.equal(chunk.mapped, true)
      // Every thread of the pool busy for a while (twice as many jobs as threads).
      const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4)
      let poolFree = false
      const busy = Array.from({length: 2 * threads}, () => new Promise((r) => crypto.pbkdf2('x', 'y', 400_000, 32, 'sha256', r)))
      void Promise.race(busy).then(() => (poolFree = true))
      const sums = await reader.fill(chunk, [[1, 2]])
      assert.equal(poolFree, false, 'fill() waited for the thread pool')
      assert.deepEqual(sumOf(sums, 1), hasher.hash(data.subarray(BS, 2 * BS)))
      assert.ok((chunk.data as Buffer).subarray(BS, 2 * BS).equals(data.subarray(BS, 2 * BS)))
      await Promise.all(busy)
      break
    }
  })
})
