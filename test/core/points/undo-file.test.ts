// The undo record's decoder against bytes built by hand (not by the encoder under test):
// accepted as built; every flipped byte of header, index or trailer refused as POINT_CORRUPT
// before anything is used; a flipped data byte refused when its extent is read; every
// truncation refused; hostile lengths refused without allocating them.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import zlib from 'node:zlib'
import {UndoFile} from '../../../src/core/points/undo-file.js'
import {tempDir} from '../../helpers/disks.js'

const BS = 4096
const corrupt = (e: Error & {code?: string}) => e.code === 'POINT_CORRUPT'

/** Header | one data extent of 2 blocks (0x11, 0x22) at block 3 | zero run of 5 at block 9 | index | trailer. */
function build(): Buffer {
  const h = Buffer.alloc(128)
  h.write('VDRUNDO1', 0, 'ascii')
  h.writeUInt16LE(1, 8)
  h.writeUInt32LE(BS, 12)
  h.writeBigUInt64LE(4n, 16) // from
  h.writeBigUInt64LE(5n, 24) // to
  h.writeBigUInt64LE(BigInt(16 * BS), 32)
  h.writeBigUInt64LE(BigInt(16 * BS), 40)
  h.writeBigUInt64LE(1000n, 48)
  h.writeBigUInt64LE(2000n, 56)
  h.fill(7, 64, 80)
  h.fill(9, 80, 96)
  h.writeUInt32LE(zlib.crc32(h.subarray(0, 124)), 124)
  const data = Buffer.concat([Buffer.alloc(BS, 0x11), Buffer.alloc(BS, 0x22)])
  const e1 = Buffer.alloc(32)
  e1.writeBigUInt64LE(3n, 0)
  e1.writeUInt32LE(2, 8)
  e1.writeUInt8(1, 12)
  e1.writeBigUInt64LE(128n, 16)
  e1.writeUInt32LE(zlib.crc32(data), 24)
  const e2 = Buffer.alloc(32)
  e2.writeBigUInt64LE(9n, 0)
  e2.writeUInt32LE(5, 8)
  e2.writeUInt8(2, 12)
  const index = Buffer.concat([e1, e2])
  const t = Buffer.alloc(64)
  t.write('VDRUEND1', 0, 'ascii')
  t.writeBigUInt64LE(2n, 8)
  t.writeBigUInt64LE(BigInt(128 + data.length), 16)
  t.writeBigUInt64LE(BigInt(data.length), 24)
  t.writeUInt32LE(zlib.crc32(index), 32)
  t.writeUInt32LE(zlib.crc32(t.subarray(0, 60)), 60)
  return Buffer.concat([h, data, index, t])
}

describe('undo record decoder', function () {
  this.timeout(60_000)
  let dir: string
  let file: string
  before(async () => {
    dir = await tempDir()
    file = path.join(dir, 'undo-4-5.vdu')
  })
  after(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  async function openBytes(b: Buffer): Promise<UndoFile> {
    await fs.writeFile(file, b)
    return UndoFile.open(file, {from: 4, to: 5})
  }

  it('reads the hand-built record', async () => {
    const f = await openBytes(build())
    try {
      assert.equal(f.header.fromSeq, 4)
      assert.equal(f.header.toSeq, 5)
      assert.deepEqual(
        f.extents.map((e) => [e.block, e.count, e.kind]),
        [
          [3, 2, 1],
          [9, 5, 2],
        ],
      )
      const d = await f.readExtent(0)
      assert.equal(d[0], 0x11)
      assert.equal(d[BS], 0x22)
    } finally {
      await f.close()
    }
  })

  it('refuses a record whose name and header disagree', async () => {
    await fs.writeFile(file, build())
    await assert.rejects(UndoFile.open(file, {from: 3, to: 5}), corrupt)
  })

  it('refuses every flipped byte of header, index and trailer; a flipped data byte fails its extent', async () => {
    const good = build()
    const dataStart = 128
    const dataEnd = 128 + 2 * BS
    for (let i = 0; i < good.length; i++) {
      if (i >= dataStart && i < dataEnd && (i - dataStart) % 997 !== 0) continue // data: a sample
      const b = Buffer.from(good)
      b[i] ^= 0x5a
      if (i >= dataStart && i < dataEnd) {
        const f = await openBytes(b)
        try {
          await assert.rejects(f.readExtent(0), corrupt, `data byte ${i}`)
        } finally {
          await f.close()
        }
      } else await assert.rejects(openBytes(b), corrupt, `byte ${i}`)
    }
  })

  it('refuses every truncation', async () => {
    const good = build()
    for (const n of [0, 1, 127, 128, 191, good.length - 65, good.length - 64, good.length - 1])
      await assert.rejects(openBytes(good.subarray(0, n)), corrupt, `${n} bytes`)
  })

  it('refuses hostile counts and offsets before allocating for them', async () => {
    const good = build()
    const hostile = (patch: (t: Buffer) => void) => {
      const b = Buffer.from(good)
      const t = b.subarray(b.length - 64)
      patch(t)
      t.writeUInt32LE(zlib.crc32(t.subarray(0, 60)), 60)
      return b
    }
    await assert.rejects(openBytes(hostile((t) => t.writeBigUInt64LE(2n ** 40n, 8))), corrupt)
    await assert.rejects(openBytes(hostile((t) => t.writeBigUInt64LE(2n ** 62n, 16))), corrupt)
    await assert.rejects(openBytes(hostile((t) => t.writeBigUInt64LE(3n, 24))), corrupt)
    const overlap = Buffer.from(good)
    const idx = overlap.subarray(128 + 2 * BS, 128 + 2 * BS + 64)
    idx.writeBigUInt64LE(4n, 32) // zero run now starts inside the data extent
    const t = overlap.subarray(overlap.length - 64)
    t.writeUInt32LE(zlib.crc32(idx), 32)
    t.writeUInt32LE(zlib.crc32(t.subarray(0, 60)), 60)
    await assert.rejects(openBytes(overlap), corrupt)
  })
})
