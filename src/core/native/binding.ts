// Loading the optional N-API addon (native/vdrep_native.cc, built at install into
// build/Release/vdrep_native.node) and the one switch that says whether it is in use. The
// files beside this one wrap its calls by job (holes, hashing, block devices, peer
// credentials, performance hints; the lock calls live in src/core/locks/), each with a
// tested pure-JS fallback for when the addon is missing or forced off.

import fs from 'node:fs'
import {createRequire} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

/** The addon's exports (native/vdrep_native.cc). Errors are Node-style errno errors. */
export interface Binding {
  punchHole(fd: number, offset: number, length: number): boolean
  seekData(fd: number, offset: number): number
  seekHole(fd: number, offset: number): number
  flock(fd: number, exclusive: boolean, nonBlocking: boolean): boolean
  funlock(fd: number): void
  blockDeviceSize(fd: number): number
  peerCred(fd: number): {pid: number; uid: number; gid: number}
  /** Optional: an addon built by an older vdrep lacks them (then the header lock is the portable one, locks/portable-lock.ts). */
  rangeLock?(fd: number, start: number, length: number, exclusive: boolean): boolean
  rangeUnlock?(fd: number, start: number, length: number): void
  /** Optional: an addon built by an older vdrep lacks it (then nothing is tuned). */
  keepFreedMemory?(mmapThreshold: number, trimThreshold: number): boolean
  /** Optional: an addon built by an older vdrep lacks it (then freed memory stays mapped up to the trim threshold). glibc malloc_trim(0). */
  trimFreedMemory?(): boolean
  /** Optional: an addon built by an older vdrep lacks it (then writeback starts at fdatasync). */
  startWriteback?(fd: number, offset: number, length: number): Promise<void>
  /** Optional: an addon built by an older vdrep lacks it (then TCP peers are found in /proc, native/peer-credentials.ts). One NETLINK_SOCK_DIAG exchange; returns the reply's full length. */
  sockDiagQuery?(request: Uint8Array, reply: Uint8Array): number
  /** Optional: an addon built by an older vdrep lacks them (then nothing watches for outside writes, native/fanotify.ts). fanotify_init + fanotify_mark(FAN_MARK_ADD) on one path; returns the group's fd. */
  fanotifyOpen?(path: string, mask: number, reportFid: boolean): number
  /** Drains the group's queue without blocking (closing any event fd): each distinct (pid, mask) pair. */
  fanotifyRead?(fd: number): {pids: Int32Array; masks: Uint32Array; more: boolean}
  /** Optional: an addon built by an older vdrep lacks it (then a service cannot say it is ready, native/sd-notify.ts). One datagram to an AF_UNIX socket ('@' = abstract). */
  sdNotify?(socketPath: string, message: string): void
  /** Optional: an addon built by an older vdrep lacks it (then the replica is written through the page cache, native/direct-io.ts). posix_memalign'd memory. */
  alignedBuffer?(size: number, alignment: number): ArrayBuffer
  /** Optional: an addon built by an older vdrep lacks it (then every direct write is copied into aligned memory first). */
  isAligned?(view: Uint8Array, alignment: number): boolean
  /** Optional: absent from a build without xxHash's sources (native/read_hash.cc). */
  readHashRuns?(
    fd: number,
    buf: Uint8Array,
    runs: Int32Array,
    chunkLen: number,
    blockSize: number,
    filePos: number,
    seed: Uint8Array,
    sums: Uint8Array,
    zero: Uint8Array,
  ): Promise<void>
  /** Optional, as readHashRuns: XXH3-128 of data under an 8-byte seed, canonical, into out at offset. */
  xxh3Into?(data: Uint8Array, seed: Uint8Array, out: Uint8Array, offset: number): void
  /** Optional, as readHashRuns; also absent from an addon built by an older vdrep. */
  mapHashRuns?(
    fd: number,
    runs: Int32Array,
    chunkLen: number,
    blockSize: number,
    filePos: number,
    seed: Uint8Array,
    sums: Uint8Array,
    zero: Uint8Array,
    pastEndForTests?: boolean,
  ): Promise<void>
}

const BINDING_FUNCTIONS = ['punchHole', 'seekData', 'seekHole', 'flock', 'funlock', 'blockDeviceSize', 'peerCred']

/**
 * The vdrep package root: the nearest folder above `start` whose package.json is named
 * "vdrep". Walking up (instead of a fixed "../../..") keeps working from src/ under a
 * loader, from dist/src/ after tsc, and inside node_modules/vdrep when installed.
 */
export function findPackageRoot(start: string): string | undefined {
  for (let dir = path.resolve(start); ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as {name?: unknown}
      if (pkg.name === 'vdrep') return dir
    } catch {
      // no package.json here, or not JSON: keep walking
    }
    if (path.dirname(dir) === dir) return undefined
  }
}

/** Why the addon is not in use (for `--verbose`/diagnostics); undefined when it is. */
export let nativeLoadError: string | undefined

function loadBinding(): Binding | undefined {
  if (process.env.VDREP_NO_NATIVE === '1') {
    nativeLoadError = 'disabled by VDREP_NO_NATIVE=1'
    return undefined
  }
  if (process.platform !== 'linux') {
    nativeLoadError = `not built for ${process.platform}`
    return undefined
  }
  const root = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)))
  if (root === undefined) {
    nativeLoadError = 'vdrep package root not found'
    return undefined
  }
  const file = path.join(root, 'build', 'Release', 'vdrep_native.node')
  try {
    const binding = createRequire(import.meta.url)(file) as Record<string, unknown>
    // A stale build from an older vdrep may lack a function: then trust none of it.
    const missing = BINDING_FUNCTIONS.filter((name) => typeof binding[name] !== 'function')
    if (missing.length > 0) {
      nativeLoadError = `${file} lacks ${missing.join(', ')} (rebuild with npm rebuild vdrep)`
      return undefined
    }
    return binding as unknown as Binding
  } catch (err) {
    nativeLoadError = `${file}: ${(err as Error).message}`
    return undefined
  }
}

/** The addon as loaded, whatever a test forces: process-wide tuning that a test cannot undo uses it. */
export const loadedAddon = loadBinding()
let binding: Binding | undefined = loadedAddon

/** The addon when in use, else undefined (every caller then takes its fallback). */
export function addon(): Binding | undefined {
  return binding
}

/** True when the addon is loaded and in use. */
export let nativeAvailable = binding !== undefined

/** Tests only: force the pure-JS fallbacks on (true) or go back to the addon (false). */
export function __forceFallbackForTests(on: boolean): void {
  binding = on ? undefined : loadedAddon
  nativeAvailable = binding !== undefined
}
