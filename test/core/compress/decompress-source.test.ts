// The receiver's DecompressingSource: a DATA_Z run expands into DATA frames whose bodies are
// page-aligned views of one pooled buffer (with the addon), so the direct writer takes them as
// they are; and the buffer goes back to the pool only once every block of the run is released
// (a run expanded while an earlier run's block is still held never lands in its memory); and
// nextNow() hands out what is here without a promise (the receive loop's fast path).
import assert from 'node:assert/strict'
import {blockHasher, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {Codec, Compressor} from '../../../src/core/compress/codec.js'
import {DecompressingSource} from '../../../src/core/compress/decompress-source.js'
import {encodeCompressedRunFields} from '../../../src/core/protocol/compressed-data.js'
import {FrameType} from '../../../src/core/protocol/frame.js'
import type {Frame, FrameSource} from '../../../src/core/protocol/frame-reader.js'
import {decodeData} from '../../../src/core/protocol/messages.js'
import {nativeAvailable} from '../../../src/core/native/binding.js'
import {directWritable} from '../../../src/core/native/direct-io.js'
import {seededText} from '../../helpers/disks.js'

const BS = 64 * 1024
const h = blockHasher(HashAlgo.XXH3, Buffer.alloc(16, 5))

function runOf(first: number, data: Buffer): Frame {
  const count = data.length / BS
  const hashes = Buffer.concat(Array.from({length: count}, (_, i) => h.hash(data.subarray(i * BS, (i + 1) * BS))))
  const packed = Buffer.from(new Compressor().compress(data, 1, data.length) as Buffer)
  const payload = Buffer.concat([encodeCompressedRunFields({first, count, rawLength: data.length, codec: Codec.ZSTD, hashes}), packed])
  return {type: FrameType.DATA_Z, payload}
}

function sourceOf(frames: Frame[]): FrameSource {
  return {next: () => Promise.resolve(frames.shift() ?? null)}
}

describe('compress: the receiver expands DATA_Z into DATA', () => {
  it('into page-aligned blocks a direct write takes as they are (with the addon), each as sent', async function () {
    if (!nativeAvailable) this.skip()
    const data = seededText('aligned', 16 * BS)
    const src = new DecompressingSource(sourceOf([runOf(3, data)]), Codec.ZSTD, BS, 64 * BS)
    for (let i = 0; i < 16; i++) {
      const f = (await src.next()) as Frame
      assert.equal(f.type, FrameType.DATA)
      const {block, hash, data: body} = decodeData(f.payload, f.body)
      assert.equal(block, 3 + i)
      assert.ok(body.equals(data.subarray(i * BS, (i + 1) * BS)), `block ${block} as sent`)
      assert.ok(h.hash(body).equals(hash))
      assert.ok(directWritable(body), `block ${block} is aligned memory`)
      f.release?.()
    }
    assert.equal(await src.next(), null)
  })

  it('nextNow: the expanded blocks, then the inner source frames as they are, without a promise; undefined when nothing is here', () => {
    const data = seededText('now', 2 * BS)
    const inner = [runOf(0, data), {type: FrameType.CHECKPOINT, payload: Buffer.alloc(8)}]
    const src = new DecompressingSource({next: () => Promise.resolve(null), nextNow: () => inner.shift()}, Codec.ZSTD, BS, 4 * BS)
    const got = [src.nextNow(), src.nextNow(), src.nextNow(), src.nextNow()]
    assert.deepEqual(
      got.map((f) => f?.type),
      [FrameType.DATA, FrameType.DATA, FrameType.CHECKPOINT, undefined],
    )
    assert.ok(decodeData((got[1] as Frame).payload, (got[1] as Frame).body).data.equals(data.subarray(BS)))
  })

  it('never expands a run into memory a block of an earlier run still holds', async () => {
    const a = seededText('run-a', 4 * BS)
    const b = seededText('run-b', 4 * BS)
    const src = new DecompressingSource(sourceOf([runOf(0, a), runOf(4, b), runOf(8, a)]), Codec.ZSTD, BS, 16 * BS)
    const held: Frame[] = []
    for (let i = 0; i < 4; i++) held.push((await src.next()) as Frame)
    // Three of run a's blocks are written (released); its last is still being written.
    for (const f of held.slice(0, 3)) f.release?.()
    const later: Frame[] = []
    for (let i = 0; i < 8; i++) later.push((await src.next()) as Frame)
    const last = held[3]
    assert.ok(decodeData(last.payload, last.body).data.equals(a.subarray(3 * BS)), 'the held block is intact after two more runs')
    for (const f of later) assert.ok(f.body && f.body.buffer !== last.body?.buffer, 'a later run is in other memory')
    last.release?.()
  })
})
