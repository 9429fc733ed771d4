// Tests of src/core/disk/chunk-reader.ts: holes are reported per block and never read. Both
// ends of a full sync read through it (the client its source, the receiver its replica or
// seed), and a buffered read of a hole fills the page cache with zero pages: reading whole
// chunks of a sparse 4 GiB disk made its first full sync ~5x slower than the next ones.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'

import {ChunkReader, type ReadableDisk} from '../../../src/core/disk/chunk-reader.js'
import {holeMap} from '../../../src/core/disk/hole-map.js'
import {mapAndHashRuns, sumOf} from '../../../src/core/disk/read-hash.js'
import {blockHasher, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {seededBytes, tempDir} from '../../helpers/disks.js'

const KiB = 1024
const MiB = 1024 * KiB
const BS = 64 * KiB

/** A disk that records every read (position and length). */
function recording(fh: fs.FileHandle): ReadableDisk & {reads: Array<[number, number]>} {
  const reads: Array<[number, number]> = []
  return {
    reads,
    fd: fh.fd,
    async readAt(buf: Buffer, len: number, pos: number): Promise<Buffer> {
      reads.push([pos, len])
      let done = 0
      while (done < len) {
        const {bytesRead} = await fh.read(buf, done, len - done, pos + done)
        if (bytesRead === 0) {
          buf.fill(0, done, len)
          break
        }
        done += bytesRead
      }
      return buf.subarray(0, len)
    },
  }
}

describe('ChunkReader', () => {
  let dir: string
  let file: string
  let fh: fs.FileHandle
  // 1 MiB of data at the start of every 4 MiB, a few bytes inside an otherwise empty block,
  // and a partial last block with data: the rest is holes.
  const size = 16 * MiB + 5000
  const writes: Array<[number, Buffer]> = [
    [0, seededBytes('a', MiB)],
    [4 * MiB, seededBytes('b', MiB)],
    [8 * MiB, seededBytes('c', MiB)],
    [10 * MiB + 100, Buffer.from('a few bytes in a block otherwise zero')],
    [12 * MiB, seededBytes('d', MiB)],
    [16 * MiB + 10, seededBytes('e', 4000)],
  ]

  before(async () => {
    dir = await tempDir()
    file = path.join(dir, 'sparse.img')
    fh = await fs.open(file, 'w+')
    await fh.truncate(size)
    for (const [off, data] of writes) await fh.write(data, 0, data.length, off)
    await fh.datasync()
  })
  after(async () => {
    await fh.close()
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('reads only the data blocks of a sparse file, and gives their bytes', async function () {
    const blockCount = Math.ceil(size / BS)
    const map = holeMap(fh.fd, size, BS, 0, blockCount)
    if (!map.holes.some((h) => h === 1)) this.skip() // no SEEK_HOLE here (fallback or file system)
    const expected = Buffer.alloc(size)
    for (const [off, data] of writes) data.copy(expected, off)

    const disk = recording(fh)
    const reader = new ChunkReader(disk, size, BS, 4 * MiB)
    let seen = 0
    let holeBlocks = 0
    for await (const chunk of reader.chunks()) {
      for (let i = 0; i < chunk.count; i++) {
        const b = chunk.first + i
        const len = Math.min(BS, size - b * BS)
        assert.equal(chunk.holes[i], map.holes[b], `hole flag of block ${b}`)
        if (chunk.holes[i]) {
          holeBlocks++
          assert.ok(
            expected.subarray(b * BS, b * BS + len).every((x) => x === 0),
            `block ${b} is flagged a hole but has data`,
          )
          continue
        }
        assert.ok(chunk.data, `chunk at block ${chunk.first} has data blocks but no bytes`)
        assert.ok(chunk.data.subarray(i * BS, i * BS + len).equals(expected.subarray(b * BS, b * BS + len)), `bytes of block ${b}`)
      }
      seen += chunk.count
      // The consumer scribbles over the buffer (it is reused): the next chunks must not care.
      chunk.data?.fill(0xa5)
    }
    assert.equal(seen, blockCount)
    assert.ok(holeBlocks >= blockCount - 4 * 16 - 2 - 1, `only ${holeBlocks} of ${blockCount} blocks are holes`)

    // No read touches a block that lies in a hole, and nothing but data blocks is read.
    let bytesRead = 0
    for (const [pos, len] of disk.reads) {
      bytesRead += len
      for (let b = Math.floor(pos / BS); b * BS < pos + len; b++) assert.equal(map.holes[b], 0, `read [${pos}, ${pos + len}) covers block ${b}, a hole`)
    }
    const dataBytes = map.holes.reduce((sum, h, b) => sum + (h ? 0 : Math.min(BS, size - b * BS)), 0)
    assert.equal(bytesRead, dataBytes, "bytes read must be the data blocks' bytes, holes are not read")
  })

  it('reads every block of a file without holes', async () => {
    const full = path.join(dir, 'full.img')
    const data = seededBytes('full', 3 * MiB + 100)
    await fs.writeFile(full, data)
    const f = await fs.open(full, 'r')
    try {
      const disk = recording(f)
      const got: Buffer[] = []
      for await (const chunk of new ChunkReader(disk, data.length, BS, MiB).chunks()) {
        assert.ok(chunk.data && chunk.holes.every((h) => h === 0))
        got.push(Buffer.from(chunk.data))
      }
      assert.ok(Buffer.concat(got).equals(data))
      assert.equal(disk.reads.length, 4, 'one read per chunk when nothing is a hole')
    } finally {
      await f.close()
    }
  })

  it('a mapped chunk has checksums and no bytes; fill() reads the blocks asked for and checksums what it read', async function () {
    const hasher = blockHasher(HashAlgo.XXH3, Buffer.alloc(16, 3))
    const full = path.join(dir, 'mapped.img')
    const data = seededBytes('mapped', 2 * MiB + 100)
    await fs.writeFile(full, data)
    const f = await fs.open(full, 'r+')
    try {
      const disk = {...recording(f), directReads: true}
      if (!(await mapAndHashRuns(disk, hasher, [[0, 1]], 0, BS, BS))) this.skip() // no addon here
      let asked = 0
      const reader = new ChunkReader(disk, data.length, BS, MiB, Number.POSITIVE_INFINITY, hasher, () => (asked++, true))
      let chunks = 0
      for await (const chunk of reader.chunks()) {
        chunks++
        assert.equal(chunk.mapped, true)
        assert.equal(chunk.data, undefined, 'a mapped chunk is not read')
        for (let i = 0; i < chunk.count; i++) {
          const b = chunk.first + i
          assert.deepEqual(sumOf(chunk.sums!, i), hasher.hash(data.subarray(b * BS, Math.min((b + 1) * BS, data.length))), `block ${b}`)
        }
        if (chunk.first !== 0) continue
        // The disk changes after the chunk was hashed (a live disk): fill() sees the new bytes.
        const changed = Buffer.alloc(BS, 0x5a)
        await f.write(changed, 0, BS, 2 * BS)
        const fresh = await reader.fill(chunk, [[2, 4]])
        const filled = chunk.data as Buffer | undefined
        assert.ok(filled, 'fill() gives the chunk its bytes')
        assert.ok(filled.subarray(2 * BS, 3 * BS).equals(changed))
        assert.ok(filled.subarray(3 * BS, 4 * BS).equals(data.subarray(3 * BS, 4 * BS)))
        assert.deepEqual(sumOf(fresh, 2), hasher.hash(changed))
        assert.deepEqual(sumOf(fresh, 3), sumOf(chunk.sums!, 3))
        assert.ok(
          disk.reads.every(([pos, len]) => pos >= 2 * BS && pos + len <= 4 * BS),
          `only the runs asked for are read: ${JSON.stringify(disk.reads)}`,
        )
      }
      assert.equal(chunks, 3)
      assert.equal(asked, 3, 'asked once per chunk')
    } finally {
      await f.close()
    }
  })

  it('without a mapping (no direct reads, as under fault injection) a chunk the consumer wants mapped is read', async () => {
    const hasher = blockHasher(HashAlgo.XXH3, Buffer.alloc(16, 3))
    const full = path.join(dir, 'unmapped.img')
    const data = seededBytes('unmapped', MiB)
    await fs.writeFile(full, data)
    const f = await fs.open(full, 'r')
    try {
      const disk = recording(f) // directReads undefined: reads must go through readAt
      for await (const chunk of new ChunkReader(disk, data.length, BS, MiB, Number.POSITIVE_INFINITY, hasher, () => true).chunks()) {
        assert.notEqual(chunk.mapped, true)
        assert.ok(chunk.data?.equals(data))
        assert.deepEqual(sumOf(chunk.sums!, 5), hasher.hash(data.subarray(5 * BS, 6 * BS)))
      }
      assert.equal(disk.reads.length, 1)
    } finally {
      await f.close()
    }
  })

  it('a consumer that stops early returns only after the reads started ahead of it have settled', async () => {
    const full = path.join(dir, 'early.img')
    const data = seededBytes('early', 4 * MiB)
    await fs.writeFile(full, data)
    const f = await fs.open(full, 'r')
    try {
      const base = recording(f)
      let inFlight = 0
      let maxInFlightAtReturn = -1
      const disk: ReadableDisk = {
        fd: f.fd,
        async readAt(buf, len, pos) {
          inFlight++
          await new Promise((r) => setTimeout(r, 50)) // slow enough to be in flight at the break
          try {
            return await base.readAt(buf, len, pos)
          } finally {
            inFlight--
          }
        },
      }
      for await (const chunk of new ChunkReader(disk, data.length, BS, MiB, Number.POSITIVE_INFINITY).chunks()) {
        assert.equal(chunk.first, 0)
        assert.ok(inFlight > 0, 'the next chunk is being read ahead')
        break // the generator's return() must wait for it before the caller closes the disk
      }
      maxInFlightAtReturn = inFlight
      assert.equal(maxInFlightAtReturn, 0, 'a read ahead was still running on the fd after the consumer stopped')
    } finally {
      await f.close()
    }
  })

  it("keep() of a mapped chunk before fill() throws (fill's buffer would be recycled under the transport)", async function () {
    const hasher = blockHasher(HashAlgo.XXH3, Buffer.alloc(16, 3))
    const full = path.join(dir, 'keep.img')
    await fs.writeFile(full, seededBytes('keep', MiB))
    const f = await fs.open(full, 'r')
    try {
      const disk = {...recording(f), directReads: true}
      if (!(await mapAndHashRuns(disk, hasher, [[0, 1]], 0, BS, BS))) this.skip() // no addon here
      const reader = new ChunkReader(disk, MiB, BS, MiB, Number.POSITIVE_INFINITY, hasher, () => true)
      for await (const chunk of reader.chunks()) {
        assert.equal(chunk.mapped, true)
        assert.throws(() => chunk.keep(), /before fill/)
        await reader.fill(chunk, [[0, 2]])
        chunk.keep() // now it holds fill's buffer
      }
    } finally {
      await f.close()
    }
  })
})
