// FrameWriter.hold (frame-writer.ts): frames sent while held leave in one write, and a send
// that has to wait for the stream to drain lets the hold go first (a corked stream never
// drains: held, that send would wait forever).
import assert from 'node:assert/strict'
import {Writable} from 'node:stream'
import {FrameType} from '../../../src/core/protocol/frame.js'
import {FrameWriter} from '../../../src/core/protocol/frame-writer.js'

/** A stream that takes each write after a tick, and counts the writes it is given. */
function countingStream(highWaterMark: number): {stream: Writable; writes: number[]} {
  const writes: number[] = []
  const stream = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk.length)
      setImmediate(cb)
    },
    writev(chunks, cb) {
      writes.push(chunks.reduce((n, c) => n + (c.chunk as Buffer).length, 0))
      setImmediate(cb)
    },
  })
  return {stream, writes}
}

describe('FrameWriter.hold', () => {
  it('hands the frames sent while held to the stream in one write', async () => {
    const {stream, writes} = countingStream(1 << 20)
    const w = new FrameWriter(stream)
    const release = w.hold()
    await w.send(FrameType.CHECKPOINT_ACK, Buffer.alloc(8))
    await w.send(FrameType.VERIFY_RESULT, Buffer.alloc(33))
    assert.deepEqual(writes, [], 'nothing leaves while held')
    release()
    assert.deepEqual(writes, [8 + 8 + 8 + 33])
    release() // a second release is a no-op
  })

  it('lets the hold go when a send must wait for the stream to drain', async function () {
    this.timeout(5_000)
    const {stream, writes} = countingStream(1024)
    const w = new FrameWriter(stream)
    w.hold()
    // Past the high-water mark: the send waits for drain, which a corked stream never emits.
    await w.send(FrameType.DATA, Buffer.alloc(4096))
    assert.equal(writes.length, 1)
    await w.send(FrameType.CHECKPOINT_ACK, Buffer.alloc(8))
    assert.equal(writes.length, 2, 'no longer held')
  })
})
