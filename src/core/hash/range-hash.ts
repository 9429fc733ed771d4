// Hash the blocks of a range of a disk file on the calling thread: holes found with
// SEEK_DATA/SEEK_HOLE are not read (they hash as zeros), each run of data blocks is read with
// one synchronous pread into a buffer the caller reuses, then hashed while it is still in
// this core's cache. Used by `track --scan` on the main thread and in HashPool workers, each
// reading its own chunks: reading on one thread and hashing on another moved every byte
// between cores and left the hashing thread waiting for reads.
import fs from 'node:fs'
import {dataRuns, holeMap} from '../disk/hole-map.js'
import {DiskIoError} from '../errors.js'
import {HASH_LENGTH, type BlockHasher} from './block-hash.js'
import {isAllZero} from './zero.js'

const PROBE = 4096

export interface FileRange {
  fd: number
  /** For messages. */
  path: string
  /** The disk's size in bytes (the last block may be short). */
  size: number
  bs: number
}

/**
 * Hashes of blocks [first, first+count) of the file, HASH_LENGTH bytes each, written to `out`
 * (or a new buffer). `buf` must hold count*bs bytes. Read errors are DiskIoErrors naming the
 * first 4 KiB that cannot be read, as SourceDisk's are.
 */
export function hashFileBlocks(
  f: FileRange,
  first: number,
  count: number,
  hasher: BlockHasher,
  buf: Buffer,
  out = Buffer.allocUnsafe(count * HASH_LENGTH),
): Buffer {
  const {holes} = holeMap(f.fd, f.size, f.bs, first, count)
  const base = first * f.bs
  const len = Math.min(count * f.bs, f.size - base)
  for (const [i, end] of dataRuns(holes, count)) {
    const off = i * f.bs
    readExactlySync(f, buf, off, Math.min(end * f.bs, len) - off, base + off)
  }
  for (let i = 0; i < count; i++) {
    const start = i * f.bs
    const blockLen = Math.min(f.bs, len - start)
    const block = holes[i] ? undefined : buf.subarray(start, start + blockLen)
    const h = !block || isAllZero(block) ? hasher.zeroHash(blockLen) : hasher.hash(block)
    h.copy(out, i * HASH_LENGTH)
  }
  return out
}

function readExactlySync(f: FileRange, buf: Buffer, bufOff: number, len: number, pos: number): void {
  try {
    readLoop(f, buf, bufOff, len, pos)
  } catch (err) {
    if (err instanceof DiskIoError) throw err
    if (len <= PROBE) throw readError(f, err, pos)
    // A large read failed: find the first 4 KiB that cannot be read, so the message names it.
    for (let off = 0; off < len; off += PROBE) {
      try {
        readLoop(f, buf, bufOff + off, Math.min(PROBE, len - off), pos + off)
      } catch (inner) {
        throw inner instanceof DiskIoError ? inner : readError(f, inner, pos + off)
      }
    }
    throw readError(f, err, pos)
  }
}

function readLoop(f: FileRange, buf: Buffer, bufOff: number, len: number, pos: number): void {
  let done = 0
  while (done < len) {
    const n = fs.readSync(f.fd, buf, bufOff + done, len - done, pos + done)
    if (n === 0) {
      throw new DiskIoError(`${f.path} ended at offset ${pos + done}, before the ${f.size} bytes it had when the sync began`, {
        hint: 'the disk shrank during the sync',
      })
    }
    done += n
  }
}

function readError(f: FileRange, err: unknown, at: number): DiskIoError {
  return new DiskIoError(`read error on ${f.path} at offset ${at}: ${(err as Error).message}`, {
    cause: err,
    hint: 'the source disk cannot be read there; nothing was reported as synced',
  })
}
