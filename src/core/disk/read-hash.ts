// Read runs of blocks of one chunk and checksum every block: what both ends of a full sync do
// to every block of their disk. With the addon and xxh3 the read and the checksums run in
// libuv's thread pool (native/read_hash.cc), so the client's and the receiver's disks are read
// and hashed in parallel and the JS thread only compares; otherwise the bytes are read with
// positional reads and hashed here. Both ways give the same bytes in `buf` and the same sums.
// A caller that needs only the checksums (hashRuns) gets them through a mapping of the chunk
// where it can: the same bytes, hashed where they lie in the page cache, without the copy.
import {readSync} from 'node:fs'
import {HASH_LENGTH, type BlockHasher} from '../hash/block-hash.js'
import {isAllZero} from '../hash/zero.js'
import {mapHashRuns, mapHashRunsAvailable, readHashRuns} from '../native/hashing.js'

export interface BlockSums {
  /** HASH_LENGTH bytes per block of the chunk; meaningful only where `zero` is 0. */
  sums: Buffer
  /** 1 where the block is all zero (a hole, or read and found zero): it has no sum here. */
  zero: Uint8Array
}

/** Block i's checksum (a view of `s.sums`), or undefined when the block is all zero. */
export function sumOf(s: BlockSums, i: number): Buffer | undefined {
  return s.zero[i] === 1 ? undefined : s.sums.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH)
}

/**
 * Blocks [from, to) of a chunk as a full sync's digest and index see them, back to back:
 * each block's checksum, or for an all-zero block the zero hash of its length (zeroHashOf,
 * given the block's index in the chunk). One buffer, so the digest takes one update per chunk.
 */
export function digestSlots(s: BlockSums, from: number, to: number, zeroHashOf: (i: number) => Buffer): Buffer {
  const out = Buffer.allocUnsafe((to - from) * HASH_LENGTH)
  // An all-hole chunk has no sums at all (every block is zero).
  const hasSums = s.sums.length >= to * HASH_LENGTH
  if (hasSums) s.sums.copy(out, 0, from * HASH_LENGTH, to * HASH_LENGTH)
  for (let i = from; i < to; i++) {
    if (s.zero[i] === 1) out.set(zeroHashOf(i), (i - from) * HASH_LENGTH)
    else if (!hasSums) throw new Error(`block ${i} of the chunk has data but no checksum`)
  }
  return out
}

/** A disk that can be read at an offset, and whether its fd may be read directly. */
export interface ReadableDisk {
  readonly fd: number
  readAt(buf: Buffer, len: number, pos: number): Promise<Buffer>
  /** True when reads may bypass readAt (false when a test injects read faults there). */
  readonly directReads?: boolean
  /** False for an O_DIRECT descriptor: a mapping would read through the page cache after all. */
  readonly mappable?: boolean
  /** Memory the fd can read into (an O_DIRECT fd needs it aligned); else any buffer will do. */
  readBuffer?(size: number): Buffer
}

/**
 * Read blocks [first, end) of each run (indexes within the chunk) into their place in `buf`,
 * and checksum every block read. Blocks outside the runs (holes) are flagged zero, not read.
 *
 * @param base the file offset of the chunk's first block
 * @param chunkLen the chunk's length in bytes (its last block may be short)
 */
export async function readAndHashRuns(
  disk: ReadableDisk,
  hasher: BlockHasher,
  buf: Buffer,
  runs: Array<[number, number]>,
  base: number,
  chunkLen: number,
  bs: number,
): Promise<BlockSums> {
  const count = Math.ceil(chunkLen / bs)
  // Its own memory (not a slice of Node's shared pool): the thread pool writes into it.
  const sums = Buffer.allocUnsafeSlow(count * HASH_LENGTH)
  const zero = new Uint8Array(count).fill(1)
  if (runs.length === 0) return {sums, zero}
  if (hasher.xxh3Seed && disk.directReads === true) {
    const pairs = runPairs(runs)
    try {
      const native = readHashRuns(disk.fd, buf, pairs, chunkLen, bs, base, hasher.xxh3Seed, sums, zero)
      if (native) {
        await native
        return {sums, zero}
      }
    } catch {
      // A failed read (EIO, a file that shrank): read again below through readAt, which
      // either succeeds or fails with the error that names the unreadable offset.
      zero.fill(1)
    }
  }
  await readRuns(disk, buf, runs, base, chunkLen, bs)
  return hashReadBlocks(hasher, buf, runs, chunkLen, bs, sums, zero)
}

/** The checksums of the runs' blocks just read into `buf` (zero blocks marked, not hashed). */
function hashReadBlocks(
  hasher: BlockHasher,
  buf: Buffer,
  runs: Array<[number, number]>,
  chunkLen: number,
  bs: number,
  sums: Buffer,
  zero: Uint8Array,
): BlockSums {
  for (const [a, b] of runs) {
    for (let i = a; i < b; i++) {
      const block = buf.subarray(i * bs, Math.min((i + 1) * bs, chunkLen))
      if (isAllZero(block)) continue
      zero[i] = 0
      hasher.hashInto(block, sums, i * HASH_LENGTH)
    }
  }
  return {sums, zero}
}

/** The most bytes readAndHashRunsNow reads on the calling thread. */
export const READ_NOW_MAX_BYTES = 1 << 20

/**
 * readAndHashRuns on the calling thread, for a few blocks just hashed through a mapping (a
 * seed's differing blocks, ChunkReader.fill): they are in the page cache, so reading them here
 * takes tens of microseconds, where a trip through the thread pool waited behind the 4 MiB
 * reads and checksums of the chunks ahead (ms each on a busy host; a 1% seed sync of 1 GiB
 * made ~120 such trips one after another, between the receiver's statuses and the sends).
 * Undefined when it does not apply (more than READ_NOW_MAX_BYTES, reads that must go through
 * readAt or cannot be plain, a short or failed read): the caller then uses readAndHashRuns,
 * which reports a failure naming the offset.
 */
export function readAndHashRunsNow(
  disk: ReadableDisk,
  hasher: BlockHasher,
  buf: Buffer,
  runs: Array<[number, number]>,
  base: number,
  chunkLen: number,
  bs: number,
): BlockSums | undefined {
  if (disk.directReads !== true || disk.mappable === false) return undefined
  let bytes = 0
  for (const [a, b] of runs) bytes += Math.min(b * bs, chunkLen) - a * bs
  if (bytes > READ_NOW_MAX_BYTES) return undefined
  const count = Math.ceil(chunkLen / bs)
  const sums = Buffer.allocUnsafeSlow(count * HASH_LENGTH)
  const zero = new Uint8Array(count).fill(1)
  try {
    for (const [a, b] of runs) {
      const off = a * bs
      const len = Math.min(b * bs, chunkLen) - off
      for (let done = 0; done < len;) {
        const n = readSync(disk.fd, buf, off + done, len - done, base + off + done)
        if (n === 0) return undefined // the file shrank: readAndHashRuns says where
        done += n
      }
    }
  } catch {
    return undefined
  }
  return hashReadBlocks(hasher, buf, runs, chunkLen, bs, sums, zero)
}

/**
 * The checksums of blocks [first, end) of each run, as readAndHashRuns gives them, for a caller
 * that does not need the bytes. Through a mapping where the addon can (no copy out of the page
 * cache); when it cannot, or the mapping fails (a file that shrank: SIGBUS, caught), the runs
 * are read into `buf()` instead, which reports any read error as readAndHashRuns does.
 */
export async function hashRuns(
  disk: ReadableDisk,
  hasher: BlockHasher,
  runs: Array<[number, number]>,
  base: number,
  chunkLen: number,
  bs: number,
  buf: () => Buffer,
): Promise<BlockSums> {
  const mapped = await mapAndHashRuns(disk, hasher, runs, base, chunkLen, bs)
  return mapped ?? readAndHashRuns(disk, hasher, buf(), runs, base, chunkLen, bs)
}

/** Whether mapAndHashRuns will try a mapping for this disk and hasher (it may still fail and read). */
export function canMapHashing(disk: ReadableDisk, hasher: BlockHasher): boolean {
  return hasher.xxh3Seed !== undefined && disk.directReads === true && disk.mappable !== false && mappedHashing && mapHashRunsAvailable()
}

/** The mapped half of hashRuns: undefined when mapping is not possible or failed. */
export async function mapAndHashRuns(
  disk: ReadableDisk,
  hasher: BlockHasher,
  runs: Array<[number, number]>,
  base: number,
  chunkLen: number,
  bs: number,
): Promise<BlockSums | undefined> {
  if (!hasher.xxh3Seed || !canMapHashing(disk, hasher)) return undefined
  const count = Math.ceil(chunkLen / bs)
  const sums = Buffer.allocUnsafeSlow(count * HASH_LENGTH)
  const zero = new Uint8Array(count).fill(1)
  if (runs.length === 0) return {sums, zero}
  try {
    const native = mapHashRuns(disk.fd, runPairs(runs), chunkLen, bs, base, hasher.xxh3Seed, sums, zero)
    if (!native) return undefined
    await native
    return {sums, zero}
  } catch {
    return undefined
  }
}

/** False: hashRuns always reads (tests compare the two ways; VDREP_NO_MMAP=1 for file systems where mapping misbehaves). */
export let mappedHashing = process.env.VDREP_NO_MMAP !== '1'

/** Tests only: turn mapped hashing on or off. */
export function __setMappedHashingForTests(on: boolean): void {
  mappedHashing = on
}

function runPairs(runs: Array<[number, number]>): Int32Array {
  const pairs = new Int32Array(runs.length * 2)
  runs.forEach(([a, b], k) => {
    pairs[2 * k] = a
    pairs[2 * k + 1] = b
  })
  return pairs
}

/** Read blocks [first, end) of each run (indexes within the chunk) into their place in `buf`, in order. */
export async function readRuns(disk: ReadableDisk, buf: Buffer, runs: Array<[number, number]>, base: number, chunkLen: number, bs: number): Promise<void> {
  for (const [a, b] of runs) {
    const off = a * bs
    await disk.readAt(buf.subarray(off), Math.min(b * bs, chunkLen) - off, base + off)
  }
}
