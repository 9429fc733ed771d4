// Reads a disk in order, a chunk of blocks at a time, one chunk ahead (the read of the next
// overlaps the hashing of this one). Buffers are reused unless the consumer `keep()`s a chunk
// (because it handed some of its bytes to a transport that may hold them): a seed sync reads
// a 1 TiB disk through a few buffers, and a fresh sync sends blocks without copying them.
// Holes are reported per block and not read.
import {holeMap} from './hole-map.js'

export interface Chunk {
  first: number
  count: number
  /** The chunk's bytes; undefined when every block is a hole. Valid until the next-but-one chunk. */
  data: Buffer | undefined
  holes: Uint8Array
  /** The consumer passed references into `data` on: do not reuse this buffer. */
  keep(): void
}

export interface ReadableDisk {
  readonly fd: number
  readAt(buf: Buffer, len: number, pos: number): Promise<Buffer>
}

const RING = 3

export async function* readChunks(disk: ReadableDisk, size: number, bs: number, chunkBytes: number): AsyncGenerator<Chunk> {
  const perChunk = Math.max(1, Math.floor(chunkBytes / bs))
  const blockCount = Math.ceil(size / bs)
  const free: Buffer[] = []
  const start = (first: number, recycle: Buffer[]): Promise<Chunk> => {
    const count = Math.min(perChunk, blockCount - first)
    const {holes, allHoles} = holeMap(disk.fd, size, bs, first, count)
    const noop = () => {}
    if (allHoles) return Promise.resolve({first, count, data: undefined, holes, keep: noop})
    // Shared memory: a worker-thread receiver gets the sent blocks without a copy.
    const buf = free.pop() ?? Buffer.from(new SharedArrayBuffer(perChunk * bs))
    let kept = false
    const len = Math.min(count * bs, size - first * bs)
    recycle.push(buf)
    return disk.readAt(buf, len, first * bs).then((data) => ({
      first,
      count,
      data,
      holes,
      keep: () => {
        if (!kept) recycle.splice(recycle.indexOf(buf), 1)
        kept = true
      },
    }))
  }
  // A chunk's buffer goes back to `free` once the chunk after it has been consumed.
  let pendingRecycle: Buffer[] = []
  let next = blockCount > 0 ? start(0, pendingRecycle) : undefined
  for (let first = 0; next; first += perChunk) {
    const chunk = await next
    const mine = pendingRecycle
    pendingRecycle = []
    next = first + perChunk < blockCount ? start(first + perChunk, pendingRecycle) : undefined
    yield chunk
    if (free.length < RING) free.push(...mine)
  }
}
