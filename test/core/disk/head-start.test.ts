// Tests of src/core/disk/head-start.ts: the source's checksums begun before the connection is
// made must be exactly the reader's own (same chunks, holes and checksums), used once and in
// order, bounded, and stoppable with nothing left running on the descriptor.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'

import {ChunkReader} from '../../../src/core/disk/chunk-reader.js'
import {HeadStart} from '../../../src/core/disk/head-start.js'
import {mapAndHashRuns, sumOf} from '../../../src/core/disk/read-hash.js'
import {blockHasher, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {seededBytes, tempDir} from '../../helpers/disks.js'

const KiB = 1024
const MiB = 1024 * KiB
const BS = 64 * KiB
const CHUNK = MiB

describe('HeadStart', () => {
  const hasher = blockHasher(HashAlgo.XXH3, Buffer.alloc(16, 7))
  let dir: string
  let file: string
  let fh: fs.FileHandle
  // Data, a hole of whole chunks, a block of zeros written out, data again, a partial last block.
  const size = 8 * MiB + 3000
  let data: Buffer

  before(async function () {
    dir = await tempDir()
    file = path.join(dir, 'disk.img')
    data = Buffer.alloc(size)
    seededBytes('one', 2 * MiB).copy(data, 0)
    seededBytes('two', 3 * MiB).copy(data, 5 * MiB)
    data.fill(0, 6 * MiB, 6 * MiB + BS)
    seededBytes('tail', 3000).copy(data, 8 * MiB)
    fh = await fs.open(file, 'w+')
    await fh.truncate(size)
    await fh.write(data, 0, 2 * MiB, 0)
    await fh.write(data, 5 * MiB, size - 5 * MiB, 5 * MiB)
    await fh.datasync()
    if (!(await mapAndHashRuns(disk(), hasher, [[0, 1]], 0, BS, BS))) this.skip() // no addon: no mapping, no head start
  })
  after(async () => {
    await fh?.close()
    await fs.rm(dir, {recursive: true, force: true})
  })

  const disk = () => ({
    fd: fh.fd,
    directReads: true,
    async readAt(buf: Buffer, len: number, pos: number): Promise<Buffer> {
      await fh.read(buf, 0, len, pos)
      return buf.subarray(0, len)
    },
  })

  async function sumsOf(
    headStart?: HeadStart,
    onChunk?: (first: number) => Promise<void>,
  ): Promise<Array<{first: number; holes: number[]; sums: string[]; mapped: boolean}>> {
    const out = []
    const reader = new ChunkReader(disk(), size, BS, CHUNK, Number.POSITIVE_INFINITY, hasher, () => true, false, headStart)
    for await (const c of reader.chunks()) {
      const sums: string[] = []
      for (let i = 0; i < c.count; i++) sums.push(c.sums!.zero[i] ? 'zero' : sumOf(c.sums!, i)!.toString('hex'))
      out.push({first: c.first, holes: [...c.holes], sums, mapped: c.mapped === true})
      await onChunk?.(c.first)
    }
    return out
  }

  it('gives the reader the same chunks, holes and checksums as the reader finds itself', async () => {
    const plain = await sumsOf()
    const early = HeadStart.start(disk(), size, BS, CHUNK, hasher)!
    await new Promise((r) => setTimeout(r, 200)) // the head start hashes the whole (small) disk
    assert.equal(early.startedUpTo >= Math.ceil(size / BS), true)
    const headed = await sumsOf(early)
    assert.deepEqual(headed, plain)
    // And both are the disk's: every block's checksum is the hash of its bytes.
    for (const c of headed)
      for (let i = 0; i < c.sums.length; i++) {
        const b = c.first + i
        const bytes = data.subarray(b * BS, Math.min(size, (b + 1) * BS))
        assert.equal(c.sums[i], bytes.every((x) => x === 0) ? 'zero' : hasher.hash(bytes).toString('hex'), `block ${b}`)
      }
  })

  it('stops at its bound; the reader hashes the rest itself, and a block changed after the head start is seen there', async () => {
    const early = HeadStart.start(disk(), size, BS, CHUNK, hasher, 2 * (CHUNK / BS))!
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(early.startedUpTo, 2 * (CHUNK / BS), 'two chunks, not more')
    // Block 100 (chunk 6) changes after the head start: beyond its bound, so the reader reads it now.
    const changed = seededBytes('changed', BS)
    await fh.write(changed, 0, BS, 100 * BS)
    try {
      const headed = await sumsOf(early)
      const c = headed.find((x) => x.first === 96)!
      assert.equal(c.sums[4], hasher.hash(changed).toString('hex'))
    } finally {
      await fh.write(data, 100 * BS, BS, 100 * BS)
    }
  })

  it('stops where the reader catches up: nothing beyond its first take is started', async () => {
    const early = HeadStart.start(disk(), size, BS, CHUNK, hasher)!
    // Taken at once: only the chunks already in the pool are the head start's.
    const started = early.startedUpTo
    const headed = await sumsOf(early, async () => {
      assert.equal(early.startedUpTo, started, 'the head start starts nothing once the reader runs')
    })
    assert.deepEqual(headed, await sumsOf())
  })

  it('stop() waits for the chunks in the pool and drops them: a reader after it hashes everything itself', async () => {
    const early = HeadStart.start(disk(), size, BS, CHUNK, hasher)!
    await early.stop()
    assert.equal(early.take(0, CHUNK / BS), undefined)
    assert.deepEqual(await sumsOf(early), await sumsOf())
  })

  it('is not made where the disk cannot be mapped (the reader then reads everything)', () => {
    const notMappable = {...disk(), directReads: false}
    assert.equal(HeadStart.start(notMappable, size, BS, CHUNK, hasher), undefined)
  })
})
