// Hints to the system that make vdrep faster and never change a result: keeping freed
// buffers for reuse, and starting writeback early. Without the addon they do nothing.

import {addon, loadedAddon} from './binding.js'

/** Buffers up to this size are carved from the heap (and reused) instead of fresh mmaps. */
const MMAP_THRESHOLD = 64 << 20
/** Freed heap memory up to this much stays mapped for reuse (a long-running serve or track keeps
 * at most this much above what it uses). */
const TRIM_THRESHOLD = 256 << 20
let allocatorTuned: boolean | undefined

/**
 * Keep freed buffers for reuse (glibc mallopt), once per process: the transfer buffers of a
 * sync (read chunks, frame arenas, socket reads) are then recycled memory instead of fresh
 * pages, each of which costs a page fault. Measured: a 512 MiB sync over SSH took ~150k
 * minor faults before. Returns whether it took effect (false without the addon or glibc).
 */
export function keepFreedMemory(): boolean {
  if (allocatorTuned === undefined) {
    allocatorTuned = false
    try {
      allocatorTuned = loadedAddon?.keepFreedMemory?.(MMAP_THRESHOLD, TRIM_THRESHOLD) === true
    } catch {
      // an old or odd build: leave the allocator as it is
    }
  }
  return allocatorTuned
}

/**
 * Hand freed heap memory back to the kernel (glibc malloc_trim(0), every arena): what
 * keepFreedMemory keeps mapped for the next buffer stays resident otherwise, up to its trim
 * threshold per arena. For a long-lived process between jobs (`vdrep serve` once its sessions
 * are over). Returns whether memory was released (false without the addon or glibc).
 */
export function trimFreedMemory(): boolean {
  try {
    return loadedAddon?.trimFreedMemory?.() === true
  } catch {
    return false
  }
}

/**
 * Start writing a written range back to the device (sync_file_range SYNC_FILE_RANGE_WRITE, in
 * the thread pool), so that a later fdatasync waits for less. A hint, never a guarantee:
 * durability still comes from fdatasync. Undefined without the addon.
 */
export function startWriteback(fd: number, offset: number, length: number): Promise<void> | undefined {
  return addon()?.startWriteback?.(fd, offset, length)
}
