// Block checksums in the addon: read-and-hash and map-and-hash of a chunk's runs of blocks in
// libuv's thread pool, and a synchronous XXH3-128. Each answers undefined when the addon
// cannot (not built, built without xxHash, or older): the caller then reads and hashes in JS.

import {addon, type Binding} from './binding.js'

/**
 * Read the given runs of blocks of a chunk into `buf` and XXH3-128-checksum each block in
 * libuv's thread pool (see native/read_hash.cc for the arguments). Undefined when the addon
 * cannot (not built, or built without xxHash): the caller then reads and hashes in JS.
 */
export function readHashRuns(
  fd: number,
  buf: Uint8Array,
  runs: Int32Array,
  chunkLen: number,
  blockSize: number,
  filePos: number,
  seed: Uint8Array,
  sums: Uint8Array,
  zero: Uint8Array,
): Promise<void> | undefined {
  return addon()?.readHashRuns?.(fd, buf, runs, chunkLen, blockSize, filePos, seed, sums, zero)
}

/**
 * The same checksums as readHashRuns, computed through a read-only mapping of the chunk: no
 * copy out of the page cache, and no buffer. Rejects ("EOF", "SIGBUS", an mmap errno) when the
 * file is too short or shrinks under the mapping; the caller then reads instead. Undefined when
 * the addon cannot. `pastEndForTests` skips the length check so a test can prove the guard.
 */
export function mapHashRuns(
  fd: number,
  runs: Int32Array,
  chunkLen: number,
  blockSize: number,
  filePos: number,
  seed: Uint8Array,
  sums: Uint8Array,
  zero: Uint8Array,
  pastEndForTests = false,
): Promise<void> | undefined {
  return addon()?.mapHashRuns?.(fd, runs, chunkLen, blockSize, filePos, seed, sums, zero, pastEndForTests)
}

/**
 * XXH3-128 of `data` seeded with the first 8 bytes of `seed` (big-endian, as xxhash-addon reads
 * a seed buffer), canonical, into out[offset..offset+16), synchronously. Undefined when the addon
 * lacks it. Preferred to xxhash-addon, which ignores N-API failures and so crashed the process
 * when a worker thread was terminated while it hashed.
 */
export function xxh3IntoNative(): Binding['xxh3Into'] {
  return addon()?.xxh3Into // an N-API function: it needs no `this`
}

/** Whether mapHashRuns can run here (an addon with xxHash and the mapped path). */
export function mapHashRunsAvailable(): boolean {
  return typeof addon()?.mapHashRuns === 'function'
}
