// Reads a disk in order, a chunk of blocks at a time, one chunk ahead (the read of the next
// overlaps the hashing of this one), through a small ring of reused buffers so a 1 TiB sync
// does not allocate 1 TiB. Holes are reported per block and not read.
import {holeMap} from './hole-map.js'

export interface Chunk {
  first: number
  count: number
  /** The chunk's bytes; undefined when every block is a hole. Valid until the next-but-one chunk. */
  data: Buffer | undefined
  holes: Uint8Array
}

export interface ReadableDisk {
  readonly fd: number
  readAt(buf: Buffer, len: number, pos: number): Promise<Buffer>
}

const RING = 3

export async function* readChunks(disk: ReadableDisk, size: number, bs: number, chunkBytes: number): AsyncGenerator<Chunk> {
  const perChunk = Math.max(1, Math.floor(chunkBytes / bs))
  const blockCount = Math.ceil(size / bs)
  const ring = Array.from({length: RING}, () => Buffer.allocUnsafe(perChunk * bs))
  let slot = 0
  const start = (first: number): Promise<Chunk> => {
    const count = Math.min(perChunk, blockCount - first)
    const {holes, allHoles} = holeMap(disk.fd, size, bs, first, count)
    const buf = ring[slot]
    slot = (slot + 1) % RING
    if (allHoles) return Promise.resolve({first, count, data: undefined, holes})
    const len = Math.min(count * bs, size - first * bs)
    return disk.readAt(buf, len, first * bs).then((data) => ({first, count, data, holes}))
  }
  let next = blockCount > 0 ? start(0) : undefined
  for (let first = 0; next; first += perChunk) {
    const chunk = await next
    next = first + perChunk < blockCount ? start(first + perChunk) : undefined
    yield chunk
  }
}
