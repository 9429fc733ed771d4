// The pre-image capture's worker under every timing a bundle can have: ranges that arrive while
// the worker is busy, just as it finishes, or after it went idle; a seal with nothing queued
// (it once awaited a settled worker forever); scattered, contiguous, hole and past-the-end
// blocks; buffers reused across commits. The record must hold, for every block named, exactly
// what the replica held (zeros for holes and past its end), whatever the timing.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {tempDir} from '../../helpers/disks.js'
import {PreImageCapture} from '../../../src/core/points/capture.js'
import {ExtentKind} from '../../../src/core/points/undo-format.js'
import {UndoFile} from '../../../src/core/points/undo-file.js'

const BS = 4096
const BLOCKS = 600

describe('pre-image capture: timing of ranges against the worker', () => {
  let dir: string
  let replica: string
  let image: Buffer

  before(async () => {
    dir = await tempDir('vdrep-capture-')
    replica = path.join(dir, 'r.img')
    image = crypto.randomBytes(BLOCKS * BS)
    image.fill(0, 100 * BS, 140 * BS) // zero blocks (data on disk)
    image.fill(0, 300 * BS, 301 * BS)
    await fs.writeFile(replica, image.subarray(0, (BLOCKS - 10) * BS + 1000)) // a partial last block; then 10 blocks past the end
    const fh = await fs.open(replica, 'r+')
    await fh.truncate((BLOCKS - 10) * BS + 1000)
    await fh.close()
    // punch a hole: rewrite blocks 200..259 as a hole by truncating and re-extending is not
    // portable; zeros written stay data, which the capture still records as a zero run.
  })
  after(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  /** What block b read as at `from`: the replica's bytes, zeros past its end. */
  function expected(b: number): Buffer {
    const size = (BLOCKS - 10) * BS + 1000
    const out = Buffer.alloc(BS)
    if (b * BS < size) image.copy(out, 0, b * BS, Math.min(size, (b + 1) * BS))
    return out
  }

  async function run(ranges: Array<[number, number]>, pause: (i: number) => Promise<void>, seq: number): Promise<void> {
    const pointsDir = path.join(dir, `p${seq}`)
    await fs.mkdir(pointsDir, {recursive: true})
    const fh = await fs.open(replica, 'r')
    const cap = await PreImageCapture.begin(pointsDir, fh, {
      blockSize: BS,
      fromSeq: seq,
      toSeq: seq + 1,
      fromDiskSize: BLOCKS * BS,
      toDiskSize: BLOCKS * BS,
      fromMs: 1,
      toMs: 2,
      replicaId: Buffer.alloc(16, 1),
      chainId: Buffer.alloc(16, 2),
    })
    for (const [i, [s, n]] of ranges.entries()) {
      await cap.add(s, n)
      await pause(i)
    }
    await cap.seal()
    await cap.publish()
    await fh.close()
    const f = await UndoFile.open(path.join(pointsDir, `undo-${seq}-${seq + 1}.vdu`), {from: seq, to: seq + 1})
    try {
      const named = new Set<number>()
      for (const [s, n] of ranges) for (let b = s; b < s + n; b++) named.add(b)
      const seen = new Set<number>()
      for (const [i, e] of f.extents.entries()) {
        const data = e.kind === ExtentKind.DATA ? await f.readExtent(i) : undefined
        for (let k = 0; k < e.count; k++) {
          const b = e.block + k
          seen.add(b)
          const got = data ? data.subarray(k * BS, (k + 1) * BS) : Buffer.alloc(BS)
          assert.ok(got.equals(expected(b)), `block ${b} holds the wrong pre-image`)
        }
      }
      assert.deepEqual(
        [...seen].sort((a, b) => a - b),
        [...named].sort((a, b) => a - b),
        'the record names exactly the blocks added',
      )
    } finally {
      await f.close()
    }
  }

  const scattered: Array<[number, number]> = []
  for (let b = 0; b < BLOCKS; b += 7) scattered.push([b, b % 3 === 0 ? 2 : 1])
  const mixed: Array<[number, number]> = [
    [0, 3],
    [50, 200],
    [290, 20],
    [560, 40], // the partial last block and past the end
  ]
  const immediate = () => Promise.resolve()
  const tick = () => new Promise<void>((r) => setImmediate(r))
  const idle = () => new Promise<void>((r) => setTimeout(r, 5))

  let seq = 0
  for (const [name, ranges] of [
    ['scattered', scattered],
    ['long and past the end', mixed],
  ] as const) {
    it(`${name}: all at once (the worker busy)`, async () => run(ranges, immediate, seq++))
    it(`${name}: a macrotask between ranges (the worker finishing as the next arrives)`, async () => run(ranges, tick, seq++))
    it(`${name}: the worker idle before each range and before the seal`, async () => run(ranges, idle, seq++))
    it(`${name}: random pauses`, async () => run(ranges, (i) => (i % 3 === 0 ? idle() : i % 3 === 1 ? tick() : immediate()), seq++))
  }

  it('a seal with nothing ever added ends', async () => run([], immediate, seq++))
})
