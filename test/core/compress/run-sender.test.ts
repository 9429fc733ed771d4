// The compression pipeline (run-sender.ts with real worker threads): what reaches the wire,
// expanded by the receiver's own decompressing reader, is every block in order with its hash,
// zero runs in their place; auto never sends an incompressible run compressed; and a worker
// killed in the middle fails the sender loudly (every later call), never a frame with wrong bytes.
import assert from 'node:assert/strict'
import {seededBytes, seededText} from '../../helpers/disks.js'
import {blockHasher, HashAlgo, HASH_LENGTH} from '../../../src/core/hash/block-hash.js'
import {FrameType} from '../../../src/core/protocol/frame.js'
import {FrameReader, type Frame} from '../../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../../src/core/protocol/frame-writer.js'
import {decodeData, decodeRange, encodeDataFields, encodeRange} from '../../../src/core/protocol/messages.js'
import {Codec} from '../../../src/core/compress/codec.js'
import {CompressPool} from '../../../src/core/compress/compress-pool.js'
import {DecompressingSource} from '../../../src/core/compress/decompress-source.js'
import {levelChooser} from '../../../src/core/compress/policy.js'
import {RunSender} from '../../../src/core/compress/run-sender.js'
import {Throttle} from '../../../src/core/sync/throttle.js'
import {duplexPair} from '../../../src/core/transport/duplex-pair.js'

const BS = 64 * 1024
const h = blockHasher(HashAlgo.BLAKE3, Buffer.alloc(16, 3))

interface Wire {
  writer: FrameWriter
  end(): Promise<{frames: Frame[]; zTypes: number[]}>
}

/**
 * A writer whose frames are read back through the receiver's DecompressingSource, over the
 * in-memory carrier a local sync uses (it keeps the very buffers it is given, copying only
 * those lent until their write callback, as the ownership rule asks of such a carrier).
 * `slow`: the reader sleeps now and then, so frames queue in the carrier.
 */
function wire(diskSize: number, slow = false): Wire {
  const [near, far] = duplexPair(slow ? 8 << 20 : 1 << 20)
  const writer = new FrameWriter(near)
  const zTypes: number[] = []
  const raw = new FrameReader(far)
  const spy = {
    next: async () => {
      if (slow && zTypes.length % 4 === 3) await new Promise((r) => setTimeout(r, 20))
      const f = await raw.next()
      if (f) zTypes.push(f.type)
      return f
    },
  }
  const src = new DecompressingSource(spy, Codec.ZSTD, BS, diskSize)
  const frames: Frame[] = []
  const reading = (async () => {
    for (let f = await src.next(); f; f = await src.next()) frames.push(f)
  })()
  return {
    writer,
    end: async () => {
      near.end()
      await reading
      return {frames, zTypes}
    },
  }
}

/** A sender over one worker (started by the test), used once `inline` bytes went on this thread. */
function sender(w: Wire, setting: 'auto' | number, inline = 2 << 20): {s: RunSender; pool: CompressPool} {
  const pool = new CompressPool(1)
  const s = new RunSender(w.writer, levelChooser(setting, 1), BS, new Throttle(0), () => pool, inline)
  return {s, pool}
}

/** Until the pool's workers have started (the sender compresses on its own thread before). */
async function started(pool: CompressPool): Promise<void> {
  while (!pool.ready) await new Promise((r) => setTimeout(r, 5))
}

/** Send `data` (whole blocks) as one run starting at `first`, hashing each block. */
async function send(s: RunSender, w: Wire, first: number, data: Buffer): Promise<void> {
  const count = data.length / BS
  const hashes = Buffer.concat(Array.from({length: count}, (_, i) => h.hash(data.subarray(i * BS, (i + 1) * BS))))
  await s.sendRun(first, count, data, hashes, (i) =>
    w.writer.send(FrameType.DATA, encodeDataFields(first + i, hashes.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH)), data.subarray(i * BS, (i + 1) * BS)),
  )
}

describe('compress/run-sender (worker pipeline)', function () {
  this.timeout(30_000)

  it('every block arrives once, in order, with its hash; zero runs keep their place', async () => {
    const blocks = 200
    const disk = Buffer.alloc(blocks * BS)
    // 30 blocks text, 10 random, 10 zero, repeated.
    for (let b = 0; b < blocks; b++) {
      const kind = b % 50 < 30 ? 'text' : b % 50 < 40 ? 'random' : 'zero'
      if (kind === 'text') seededText(`t${b}`, BS).copy(disk, b * BS)
      if (kind === 'random') seededBytes(`r${b}`, BS).copy(disk, b * BS)
    }
    const w = wire(disk.length)
    const {s, pool} = sender(w, 1)
    try {
      for (let b = 0; b < blocks; b += 50) {
        await send(s, w, b, disk.subarray(b * BS, (b + 40) * BS))
        const range = encodeRange(b + 40, 10)
        await s.later(() => w.writer.send(FrameType.ZERO_RUN, range))
      }
      await s.drain()
    } finally {
      await s.close()
    }
    const {frames, zTypes} = await w.end()
    assert.ok(zTypes.includes(FrameType.DATA_Z), 'text went compressed')
    assert.ok(zTypes.includes(FrameType.DATA), 'random went raw')
    const out = Buffer.alloc(disk.length, 0xee)
    let next = 0
    for (const f of frames) {
      if (f.type === FrameType.ZERO_RUN) {
        const {start, count} = decodeRange(f.payload, 'ZERO_RUN')
        assert.equal(start, next, 'zero run in order')
        out.fill(0, start * BS, (start + count) * BS)
        next = start + count
        continue
      }
      assert.equal(f.type, FrameType.DATA)
      const d = decodeData(f.payload, f.body)
      assert.equal(d.block, next, 'blocks in order')
      assert.deepEqual(d.hash, h.hash(d.data))
      d.data.copy(out, d.block * BS)
      next = d.block + 1
    }
    assert.equal(next, blocks)
    assert.ok(out.equals(disk), 'the expanded stream is the disk')
    assert.equal(pool.workers, 1)
  })

  it('a random piece whose sample fails behind queued text is copied: the caller reuses its buffer at once', async () => {
    // 1 MiB runs, text and random by turns, all from one buffer the caller scribbles over as soon
    // as sendRun resolves (a missing copy sends 0xee bytes, which the hashes or the compare catch).
    const per = 16
    const runs = 12
    const expect = Buffer.alloc(runs * per * BS)
    const buf = Buffer.alloc(per * BS)
    const w = wire(expect.length)
    const {s} = sender(w, 1, 0)
    try {
      for (let r = 0; r < runs; r++) {
        const piece = r % 3 === 2 ? seededText(`t${r}`, per * BS) : seededBytes(`r${r}`, per * BS)
        piece.copy(expect, r * per * BS)
        piece.copy(buf)
        const first = r * per
        const hashes = Buffer.concat(Array.from({length: per}, (_, i) => h.hash(buf.subarray(i * BS, (i + 1) * BS))))
        // The caller's raw path sends at once (a real carrier encrypts the bytes in the call; the
        // PassThrough here would keep a reference, so this copies).
        await s.sendRun(first, per, buf, hashes, (i) =>
          w.writer.send(
            FrameType.DATA,
            encodeDataFields(first + i, hashes.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH)),
            Buffer.from(buf.subarray(i * BS, (i + 1) * BS)),
          ),
        )
        buf.fill(0xee)
      }
      await s.drain()
    } finally {
      await s.close()
    }
    const {frames, zTypes} = await w.end()
    assert.ok(zTypes.includes(FrameType.DATA_Z) && zTypes.includes(FrameType.DATA), zTypes.join(','))
    const out = Buffer.alloc(expect.length)
    frames.forEach((f, i) => {
      const d = decodeData(f.payload, f.body)
      assert.equal(d.block, i, 'blocks in order')
      assert.deepEqual(d.hash, h.hash(d.data))
      d.data.copy(out, d.block * BS)
    })
    assert.ok(out.equals(expect), 'the expanded stream is what was given')
    assert.equal(s.stats().incompressibleBytes, (runs - runs / 3) * per * BS)
  })

  it('pieces cheap to compress stay on the sending thread, and the bytes arrive exact', async () => {
    // A repeated line compresses at GB/s: a worker's round trip costs more than the work (the
    // loopback bench waited 0.7-1.7 s on the workers for 0.1 s of compressing).
    const line = Buffer.from('the same line again and again, as a log of one event might be.\n')
    const text = Buffer.alloc(256 * BS)
    for (let p = 0; p < text.length; p += line.length) line.copy(text, p)
    const w = wire(text.length)
    const s = new RunSender(w.writer, levelChooser(1, 1), BS, new Throttle(0), () => new CompressPool(1), 4 << 20)
    try {
      await send(s, w, 0, text)
      await s.drain()
    } finally {
      await s.close()
    }
    const {frames, zTypes} = await w.end()
    assert.equal(s.stats().inlineBytes, text.length)
    assert.ok(
      zTypes.every((t) => t === FrameType.DATA_Z),
      zTypes.join(','),
    )
    const out = Buffer.alloc(text.length)
    for (const f of frames) decodeData(f.payload, f.body).data.copy(out, decodeData(f.payload, f.body).block * BS)
    assert.ok(out.equals(text))
  })

  it('pieces costly to compress go to the workers once they have started, on this thread until then', async () => {
    const text = seededText('costly', 256 * BS)
    const w = wire(text.length)
    const {s, pool} = sender(w, 1, 2 << 20)
    try {
      await send(s, w, 0, text.subarray(0, 128 * BS))
      await s.drain()
      await started(pool)
      await send(s, w, 128, text.subarray(128 * BS))
      await s.drain()
    } finally {
      await s.close()
    }
    const {frames} = await w.end()
    assert.equal(frames.length, 256)
    const z = s.stats()
    assert.ok(z.inlineBytes >= 2 << 20 && z.inlineBytes <= 8 << 20, `${z.inlineBytes} bytes compressed on this thread`)
  })

  it('auto never sends an incompressible run compressed', async () => {
    const data = seededBytes('random', 64 * BS)
    const w = wire(data.length)
    const {s} = sender(w, 'auto')
    try {
      await send(s, w, 0, data)
      await s.drain()
    } finally {
      await s.close()
    }
    const {frames, zTypes} = await w.end()
    assert.ok(!zTypes.includes(FrameType.DATA_Z), `frames: ${zTypes.join(',')}`)
    assert.equal(frames.length, 64)
    assert.equal(s.stats().runs, 0)
  })

  it('a worker killed mid-transfer fails the sender loudly; nothing sent before is wrong', async () => {
    const text = seededText('text', 512 * BS)
    const w = wire(text.length)
    const {s, pool} = sender(w, 1)
    let failure: unknown
    try {
      await send(s, w, 0, text.subarray(0, 32 * BS))
      await s.drain()
      await started(pool)
      void pool.threads()[0].terminate()
      await send(s, w, 32, text.subarray(32 * BS))
      await s.drain()
    } catch (err) {
      failure = err
    } finally {
      await s.close()
    }
    assert.equal((failure as {code?: string})?.code, 'COMPRESS_WORKER', String(failure))
    await assert.rejects(send(s, w, 0, text.subarray(0, BS)), {code: 'COMPRESS_WORKER'})
    const {frames} = await w.end()
    assert.ok(frames.length >= 32 && frames.length < 512, `${frames.length} blocks arrived`)
    for (const f of frames) {
      const d = decodeData(f.payload, f.body)
      assert.ok(d.data.equals(text.subarray(d.block * BS, (d.block + 1) * BS)), `block ${d.block} is the source's`)
    }
  })

  it('never reuses a transfer buffer while its frame is still queued in a slow carrier', async () => {
    // Every piece distinct (text and random pieces interleaved), the reader slow so frames
    // queue in the carrier: a buffer given back before its write called back would be
    // overwritten by a later piece while still queued, and some block would arrive wrong.
    const blocks = 640
    const disk = Buffer.alloc(blocks * BS)
    for (let b = 0; b < blocks; b += 16) {
      const piece = Math.floor(b / 16)
      ;(piece % 3 === 1 ? seededBytes(`r${piece}`, 16 * BS) : seededText(`t${piece}`, 16 * BS)).copy(disk, b * BS)
    }
    const w = wire(disk.length, true)
    const {s, pool} = sender(w, 1, 0)
    await started(pool)
    try {
      // One caller buffer, overwritten after each run as a chunk reader's would be.
      const chunk = Buffer.alloc(64 * BS)
      for (let b = 0; b < blocks; b += 64) {
        disk.copy(chunk, 0, b * BS, (b + 64) * BS)
        await send(s, w, b, chunk)
        chunk.fill(0xa5)
      }
      await s.drain()
    } finally {
      await s.close()
    }
    const {frames, zTypes} = await w.end()
    assert.ok(zTypes.includes(FrameType.DATA_Z) && zTypes.includes(FrameType.DATA), 'both kinds of frame went')
    let next = 0
    for (const f of frames) {
      const d = decodeData(f.payload, f.body)
      assert.equal(d.block, next++, 'blocks in order')
      assert.ok(d.data.equals(disk.subarray(d.block * BS, (d.block + 1) * BS)), `block ${d.block} is the source's`)
      assert.deepEqual(d.hash, h.hash(d.data))
    }
    assert.equal(next, blocks)
    const made = s.buffersMade()
    assert.ok(made > 0 && made <= 2 * 8, `${made} transfer buffers made for ${blocks / 16} pieces: they are reused`)
  })
})
