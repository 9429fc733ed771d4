// Ship the frozen blocks as one bundle on the delta port: BUNDLE_BEGIN, then the blocks in
// order (contiguous ones read together; all-zero ones as run lengths), then BUNDLE_END with
// the digest of everything sent. Returns the hashes shipped, for the block hash index.
import {blockHasher} from '../hash/block-hash.js'
import {isAllZero} from '../hash/zero.js'
import {digestData, digestZero} from '../protocol/bundle-digest.js'
import {FrameType} from '../protocol/frame.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import {encodeBundleBegin, encodeBundleEnd, encodeDataFields, encodeRange} from '../protocol/messages.js'
import type {FrozenSet} from './frozen-set.js'
import type {Throttle} from './throttle.js'

const MAX_READ_BLOCKS_BYTES = 4 << 20

export interface BundleStats {
  blocks: number
  dataBlocks: number
  zeroBlocks: number
  bytesSent: number
  readMs: number
  sendMs: number
  hashes: Map<number, Buffer>
}

export async function sendBundle(frozen: FrozenSet, seq: number, diskSize: number, bs: number, hashAlgo: number, writer: FrameWriter, throttle: Throttle): Promise<BundleStats> {
  const hasher = blockHasher(hashAlgo)
  const digest = hasher.createStream()
  const blocks = [...frozen.bitmap.setBlocks()].filter((b) => b * bs < diskSize)
  const stats: BundleStats = {blocks: blocks.length, dataBlocks: 0, zeroBlocks: 0, bytesSent: 0, readMs: 0, sendMs: 0, hashes: new Map()}
  await writer.send(FrameType.BUNDLE_BEGIN, encodeBundleBegin({seq, blockCount: blocks.length, diskSize}))
  const perRead = Math.max(1, Math.floor(MAX_READ_BLOCKS_BYTES / bs))
  let zeroStart = -1
  let zeroEnd = -1
  const flushZeros = async () => {
    if (zeroStart < 0) return
    await writer.send(FrameType.ZERO_RUN, encodeRange(zeroStart, zeroEnd - zeroStart))
    digestZero(digest, zeroStart, zeroEnd - zeroStart)
    zeroStart = -1
  }
  for (let i = 0; i < blocks.length; ) {
    let j = i + 1
    while (j < blocks.length && blocks[j] === blocks[j - 1] + 1 && j - i < perRead) j++
    const first = blocks[i]
    const t0 = performance.now()
    const data = await frozen.read(first, j - i)
    const t1 = performance.now()
    stats.readMs += t1 - t0
    for (let k = 0; k < j - i; k++) {
      const b = first + k
      const len = Math.min(bs, diskSize - b * bs)
      const block = data.subarray(k * bs, k * bs + len)
      if (isAllZero(block)) {
        stats.hashes.set(b, hasher.zeroHash(len))
        if (zeroStart >= 0 && zeroEnd === b) zeroEnd++
        else {
          await flushZeros()
          zeroStart = b
          zeroEnd = b + 1
        }
        stats.zeroBlocks++
        continue
      }
      await flushZeros()
      const hash = hasher.hash(block)
      stats.hashes.set(b, hash)
      await throttle.take(len)
      await writer.send(FrameType.DATA, encodeDataFields(b, hash), block)
      digestData(digest, b, hash)
      stats.dataBlocks++
      stats.bytesSent += len
    }
    stats.sendMs += performance.now() - t1
    i = j
  }
  await flushZeros()
  await writer.send(FrameType.BUNDLE_END, encodeBundleEnd({seq, blockCount: blocks.length, digest: digest.digest()}))
  return stats
}
