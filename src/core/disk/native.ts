// The one module the rest of vdrep calls for the Linux system calls Node lacks: punching
// holes, SEEK_DATA/SEEK_HOLE, flock, block-device size and peer credentials. It uses the
// optional N-API addon (native/vdrep_native.cc, built at install into
// build/Release/vdrep_native.node) and falls back to pure JS when the addon is missing, so
// every function here always answers; the fallbacks are tested by forcing them.
//
// What the fallbacks cannot do, callers must know:
// - punchHole returns false, zeroRange writes zeros instead (same bytes, more space used).
// - seekData/seekHole say "everything is data" (correct, just not sparse-aware).
// - flock cannot lock at all: it returns true and `flockIsAdvisoryOnly` is true, so callers
//   that need mutual exclusion must also take a lock file (e.g. proper-lockfile).
// - blockDeviceSize runs `blockdev --getsize64` (util-linux).
// - peerUid of a unix socket is undefined (unknown); TCP loopback peers are found through
//   /proc/net/tcp{,6} in pure TS either way.

import {execFileSync} from 'node:child_process'
import fs from 'node:fs'
import {createRequire} from 'node:module'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import {DiskIoError, isNoSpace, LocalFullError, UsageError} from '../errors.js'

/** The addon's exports (native/vdrep_native.cc). Errors are Node-style errno errors. */
interface Binding {
  punchHole(fd: number, offset: number, length: number): boolean
  seekData(fd: number, offset: number): number
  seekHole(fd: number, offset: number): number
  flock(fd: number, exclusive: boolean, nonBlocking: boolean): boolean
  funlock(fd: number): void
  blockDeviceSize(fd: number): number
  peerCred(fd: number): {pid: number; uid: number; gid: number}
  /** Optional: an addon built by an older vdrep lacks them (then header updates are not serialised). */
  rangeLock?(fd: number, start: number, length: number, exclusive: boolean): boolean
  rangeUnlock?(fd: number, start: number, length: number): void
  /** Optional: an addon built by an older vdrep lacks it (then nothing is tuned). */
  keepFreedMemory?(mmapThreshold: number, trimThreshold: number): boolean
  /** Optional: an addon built by an older vdrep lacks it (then writeback starts at fdatasync). */
  startWriteback?(fd: number, offset: number, length: number): Promise<void>
  /** Optional: absent from a build without xxHash's sources (native/read_hash.cc). */
  readHashRuns?(fd: number, buf: Uint8Array, runs: Int32Array, chunkLen: number, blockSize: number, filePos: number, seed: Uint8Array, sums: Uint8Array, zero: Uint8Array): Promise<void>
  /** Optional, as readHashRuns: XXH3-128 of data under an 8-byte seed, canonical, into out at offset. */
  xxh3Into?(data: Uint8Array, seed: Uint8Array, out: Uint8Array, offset: number): void
  /** Optional, as readHashRuns; also absent from an addon built by an older vdrep. */
  mapHashRuns?(fd: number, runs: Int32Array, chunkLen: number, blockSize: number, filePos: number, seed: Uint8Array, sums: Uint8Array, zero: Uint8Array, pastEndForTests?: boolean): Promise<void>
}

const BINDING_FUNCTIONS = ['punchHole', 'seekData', 'seekHole', 'flock', 'funlock', 'blockDeviceSize', 'peerCred']

/** Zeros are written in chunks of this size when a hole cannot be punched. */
export const ZERO_CHUNK = 1024 * 1024

// ---------------------------------------------------------------------------------------
// Loading

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

const loaded = loadBinding()
let binding: Binding | undefined = loaded

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
      allocatorTuned = loaded?.keepFreedMemory?.(MMAP_THRESHOLD, TRIM_THRESHOLD) === true
    } catch {
      // an old or odd build: leave the allocator as it is
    }
  }
  return allocatorTuned
}

/**
 * Read the given runs of blocks of a chunk into `buf` and XXH3-128-checksum each block in
 * libuv's thread pool (see native/read_hash.cc for the arguments). Undefined when the addon
 * cannot (not built, or built without xxHash): the caller then reads and hashes in JS.
 */
export function readHashRuns(fd: number, buf: Uint8Array, runs: Int32Array, chunkLen: number, blockSize: number, filePos: number, seed: Uint8Array, sums: Uint8Array, zero: Uint8Array): Promise<void> | undefined {
  return binding?.readHashRuns?.(fd, buf, runs, chunkLen, blockSize, filePos, seed, sums, zero)
}

/**
 * Start writing a written range back to the device (sync_file_range SYNC_FILE_RANGE_WRITE, in
 * the thread pool), so that a later fdatasync waits for less. A hint, never a guarantee:
 * durability still comes from fdatasync. Undefined without the addon.
 */
export function startWriteback(fd: number, offset: number, length: number): Promise<void> | undefined {
  return binding?.startWriteback?.(fd, offset, length)
}

/**
 * The same checksums as readHashRuns, computed through a read-only mapping of the chunk: no
 * copy out of the page cache, and no buffer. Rejects ("EOF", "SIGBUS", an mmap errno) when the
 * file is too short or shrinks under the mapping; the caller then reads instead. Undefined when
 * the addon cannot. `pastEndForTests` skips the length check so a test can prove the guard.
 */
export function mapHashRuns(fd: number, runs: Int32Array, chunkLen: number, blockSize: number, filePos: number, seed: Uint8Array, sums: Uint8Array, zero: Uint8Array, pastEndForTests = false): Promise<void> | undefined {
  return binding?.mapHashRuns?.(fd, runs, chunkLen, blockSize, filePos, seed, sums, zero, pastEndForTests)
}

/**
 * XXH3-128 of `data` seeded with the first 8 bytes of `seed` (big-endian, as xxhash-addon reads
 * a seed buffer), canonical, into out[offset..offset+16), synchronously. Undefined when the addon
 * lacks it. Preferred to xxhash-addon, which ignores N-API failures and so crashed the process
 * when a worker thread was terminated while it hashed.
 */
export function xxh3IntoNative(): Binding['xxh3Into'] {
  return binding?.xxh3Into // an N-API function: it needs no `this`
}

/** Whether mapHashRuns can run here (an addon with xxHash and the mapped path). */
export function mapHashRunsAvailable(): boolean {
  return typeof binding?.mapHashRuns === 'function'
}

/** True when the addon is loaded and in use. */
export let nativeAvailable = binding !== undefined

/**
 * True when flock() cannot really lock (no addon): it then always succeeds, so callers
 * that need mutual exclusion must also hold a lock file.
 */
export let flockIsAdvisoryOnly = !nativeAvailable

/** Tests only: force the pure-JS fallbacks on (true) or go back to the addon (false). */
export function __forceFallbackForTests(on: boolean): void {
  binding = on ? undefined : loaded
  nativeAvailable = binding !== undefined
  flockIsAdvisoryOnly = !nativeAvailable
}

// ---------------------------------------------------------------------------------------
// Helpers

function checkFd(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0) throw new UsageError('BAD_ARGUMENT', `not a file descriptor: ${fd}`)
}

function checkOffset(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new UsageError('BAD_ARGUMENT', `${name} must be a non-negative integer, got ${value}`)
  }
}

/** The path an fd was opened with, for messages; falls back to "fd N". */
function describeFd(fd: number): string {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`)
  } catch {
    return `fd ${fd}`
  }
}

/**
 * Wrap a system-call failure, naming the file. A full filesystem is LOCAL_FULL: this code runs
 * on both hosts and cannot tell which it is on; the receiver turns it into REPLICA_FULL.
 */
function ioError(what: string, err: unknown): Error {
  const detail = (err as Error | undefined)?.message ?? String(err)
  if (isNoSpace(err)) return new LocalFullError(`${what}: ${detail}`, {cause: err})
  return new DiskIoError(`${what}: ${detail}`, {cause: err})
}

/** Size of what fd refers to; fstat says 0 for block devices, so ask the device. */
function sizeOfFd(fd: number): number {
  const st = fs.fstatSync(fd)
  return st.isBlockDevice() ? blockDeviceSize(fd) : st.size
}

// ---------------------------------------------------------------------------------------
// Holes

/**
 * Deallocate [offset, offset+length) so it reads as zeros, keeping the file size
 * (FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE). Returns false when the filesystem cannot
 * punch holes or the addon is missing: the caller must then write zeros (see zeroRange).
 */
export function punchHole(fd: number, offset: number, length: number): boolean {
  checkFd(fd)
  checkOffset('offset', offset)
  checkOffset('length', length)
  if (binding === undefined) return false
  try {
    return binding.punchHole(fd, offset, length)
  } catch (err) {
    throw ioError(`cannot punch a hole in ${describeFd(fd)} at ${offset} (+${length})`, err)
  }
}

let zeros: Buffer | undefined
const writeAsync = promisify(fs.write)

/**
 * Make [offset, offset+length) read as zeros: punch a hole, or failing that write zeros in
 * 1 MiB chunks. Like the punch it never grows a regular file: the part of the range past
 * its end is left alone (a block device's size is fixed anyway).
 */
export async function zeroRange(fd: number, offset: number, length: number): Promise<void> {
  if (punchHole(fd, offset, length) || length === 0) return
  let end = offset + length
  const st = fs.fstatSync(fd)
  if (st.isFile()) end = Math.min(end, st.size)
  zeros ??= Buffer.alloc(ZERO_CHUNK)
  for (let pos = offset; pos < end; ) {
    const n = Math.min(ZERO_CHUNK, end - pos)
    try {
      const {bytesWritten} = await writeAsync(fd, zeros, 0, n, pos)
      // A write of 0 bytes (end of a device) would loop forever.
      if (bytesWritten === 0) throw Object.assign(new Error('wrote 0 bytes'), {code: 'EIO'})
      pos += bytesWritten
    } catch (err) {
      throw ioError(`cannot write zeros to ${describeFd(fd)} at ${pos}`, err)
    }
  }
}

/**
 * Offset of the first data at or after `offset`, or -1 when there is none (offset at or
 * past the end). Without the addon, or where the kernel has no SEEK_DATA, everything
 * before the end is data, so this is `offset` itself.
 */
export function seekData(fd: number, offset: number): number {
  return seek(fd, offset, 'data')
}

/**
 * Offset of the first hole at or after `offset` (the end of the file counts as a hole), or
 * -1 when offset is at or past the end. Fallback: the end of the file.
 */
export function seekHole(fd: number, offset: number): number {
  return seek(fd, offset, 'hole')
}

function seek(fd: number, offset: number, what: 'data' | 'hole'): number {
  checkFd(fd)
  checkOffset('offset', offset)
  if (binding !== undefined) {
    try {
      return what === 'data' ? binding.seekData(fd, offset) : binding.seekHole(fd, offset)
    } catch (err) {
      // EINVAL: a kernel without SEEK_DATA/SEEK_HOLE; answer like the fallback.
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') {
        throw ioError(`cannot seek ${what} in ${describeFd(fd)} from ${offset}`, err)
      }
    }
  }
  let size: number
  try {
    size = sizeOfFd(fd)
  } catch (err) {
    if (err instanceof DiskIoError || err instanceof UsageError) throw err
    throw ioError(`cannot stat ${describeFd(fd)}`, err)
  }
  if (offset >= size) return -1
  return what === 'data' ? offset : size
}

// ---------------------------------------------------------------------------------------
// Locks

/**
 * flock(2) on fd: shared or exclusive, blocking or not. Returns false only when
 * non-blocking and another open file description holds a conflicting lock. The lock
 * belongs to the open file description (not the process), so two opens of one file in one
 * process conflict, and it goes away when the last fd of that description closes.
 * Blocking mode blocks the whole JS thread: prefer nonBlocking and retry.
 * Without the addon this cannot lock: it returns true and `flockIsAdvisoryOnly` is set.
 */
export function flock(fd: number, exclusive: boolean, nonBlocking: boolean): boolean {
  checkFd(fd)
  if (binding === undefined) return true
  try {
    return binding.flock(fd, exclusive, nonBlocking)
  } catch (err) {
    throw ioError(`cannot lock ${describeFd(fd)}`, err)
  }
}

/**
 * An open-file-description record lock (fcntl F_OFD_SETLK) on [start, start+length) of fd,
 * non-blocking: false when another open file description holds a conflicting one. Separate
 * from flock(), so it can guard part of a file that is also flock()ed. Without the addon (or
 * with an addon built by an older vdrep) it cannot lock and returns true.
 */
export function rangeLock(fd: number, start: number, length: number, exclusive: boolean): boolean {
  checkFd(fd)
  if (binding?.rangeLock === undefined) return true
  try {
    return binding.rangeLock(fd, start, length, exclusive)
  } catch (err) {
    throw ioError(`cannot lock ${describeFd(fd)}`, err)
  }
}

/** Release a rangeLock (no-op where it could not lock). */
export function rangeUnlock(fd: number, start: number, length: number): void {
  checkFd(fd)
  if (binding?.rangeUnlock === undefined) return
  try {
    binding.rangeUnlock(fd, start, length)
  } catch (err) {
    throw ioError(`cannot unlock ${describeFd(fd)}`, err)
  }
}

/** Release a flock() lock on fd (no-op without the addon). */
export function funlock(fd: number): void {
  checkFd(fd)
  if (binding === undefined) return
  try {
    binding.funlock(fd)
  } catch (err) {
    throw ioError(`cannot unlock ${describeFd(fd)}`, err)
  }
}

// ---------------------------------------------------------------------------------------
// Block devices

/** Size in bytes of the block device open on fd (ioctl BLKGETSIZE64, or `blockdev`). */
export function blockDeviceSize(fd: number): number {
  checkFd(fd)
  if (!fs.fstatSync(fd).isBlockDevice()) {
    throw new UsageError('NOT_BLOCK_DEVICE', `${describeFd(fd)} is not a block device`)
  }
  if (binding === undefined) {
    // /proc/<pid>/fd/N reopens exactly the device we hold, even if its node was renamed.
    return blockdevGetSize(`/proc/${process.pid}/fd/${fd}`, describeFd(fd))
  }
  try {
    return binding.blockDeviceSize(fd)
  } catch (err) {
    throw ioError(`cannot get the size of block device ${describeFd(fd)}`, err)
  }
}

/** Size in bytes of the block device at path. */
export function blockDeviceSizeOfPath(devicePath: string): number {
  let st: fs.Stats
  try {
    st = fs.statSync(devicePath)
  } catch (err) {
    throw ioError(`cannot stat ${devicePath}`, err)
  }
  if (!st.isBlockDevice()) throw new UsageError('NOT_BLOCK_DEVICE', `${devicePath} is not a block device`)
  if (binding === undefined) return blockdevGetSize(devicePath, devicePath)
  let fd: number
  try {
    fd = fs.openSync(devicePath, fs.constants.O_RDONLY)
  } catch (err) {
    throw ioError(`cannot open block device ${devicePath}`, err)
  }
  try {
    return blockDeviceSize(fd)
  } finally {
    fs.closeSync(fd)
  }
}

function blockdevGetSize(devicePath: string, label: string): number {
  let out: string
  try {
    out = execFileSync('blockdev', ['--getsize64', devicePath], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
  } catch (err) {
    const e = err as NodeJS.ErrnoException & {stderr?: string}
    const why = e.code === 'ENOENT' ? 'blockdev (util-linux) is not installed' : (e.stderr?.trim() || e.message)
    throw new DiskIoError(`cannot get the size of block device ${label}: ${why}`, {cause: err})
  }
  const size = Number(out.trim())
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new DiskIoError(`cannot get the size of block device ${label}: blockdev printed ${JSON.stringify(out)}`)
  }
  return size
}

// ---------------------------------------------------------------------------------------
// Peer credentials

/**
 * The uid owning the other end of a connected socket, or undefined when it cannot be
 * known (peer on another host or network namespace, connection already gone, unix socket
 * without the addon). Callers deciding access must treat undefined as "deny".
 * - unix sockets: SO_PEERCRED (the uid at connect time).
 * - TCP: the peer socket's entry in /proc/net/tcp{,6} (local = our remote and remote = our
 *   local), whose uid column is its owner. Pure TS, so it works without the addon.
 */
export function peerUid(socket: net.Socket): number | undefined {
  if (socket.remoteAddress !== undefined && socket.remotePort !== undefined) return tcpPeerUid(socket)
  const fd = (socket as unknown as {_handle?: {fd?: unknown}})._handle?.fd
  if (binding === undefined || typeof fd !== 'number' || fd < 0) return undefined
  try {
    return binding.peerCred(fd).uid
  } catch {
    return undefined // not connected or not a unix socket: unknown
  }
}

// TIME_WAIT sockets are owned by the kernel (uid 0 in /proc), never a live peer.
const TCP_TIME_WAIT = 0x06

function tcpPeerUid(socket: net.Socket): number | undefined {
  const {localAddress, localPort, remoteAddress, remotePort} = socket
  if (localAddress === undefined || localPort === undefined || remoteAddress === undefined || remotePort === undefined) {
    return undefined
  }
  const ourLocal = canonicalIp(localAddress)
  const ourRemote = canonicalIp(remoteAddress)
  if (ourLocal === undefined || ourRemote === undefined) return undefined
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = fs.readFileSync(file, 'utf8')
    } catch {
      continue // no IPv6, or no /proc: try the other, then give up
    }
    for (const e of parseProcNetTcp(text)) {
      if (e.state === TCP_TIME_WAIT) continue
      if (e.localAddress === ourRemote && e.localPort === remotePort && e.remoteAddress === ourLocal && e.remotePort === localPort) {
        return e.uid
      }
    }
  }
  return undefined
}

export interface ProcNetTcpEntry {
  /** Canonical address (see canonicalIp): IPv4 and IPv4-mapped IPv6 as dotted quads. */
  localAddress: string
  localPort: number
  remoteAddress: string
  remotePort: number
  /** Kernel TCP state (1 ESTABLISHED, 6 TIME_WAIT, 10 LISTEN, ...). */
  state: number
  uid: number
}

/** Parse the text of /proc/net/tcp or /proc/net/tcp6 (header line and bad lines skipped). */
export function parseProcNetTcp(text: string): ProcNetTcpEntry[] {
  const entries: ProcNetTcpEntry[] = []
  for (const line of text.split('\n')) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...
    const f = line.trim().split(/\s+/)
    if (f.length < 8 || !/^\d+:$/.test(f[0])) continue
    const local = decodeProcNetEndpoint(f[1])
    const remote = decodeProcNetEndpoint(f[2])
    const state = Number.parseInt(f[3], 16)
    const uid = Number(f[7])
    if (local === undefined || remote === undefined || !Number.isInteger(uid)) continue
    entries.push({localAddress: local[0], localPort: local[1], remoteAddress: remote[0], remotePort: remote[1], state, uid})
  }
  return entries
}

/**
 * Decode "0100007F:1F90" (tcp) or a 32-hex-digit address (tcp6) into [canonical ip, port].
 * The kernel prints each 32-bit word of the network-order address with %08X, i.e. as a
 * host-order integer: on little-endian machines the bytes of each word come out reversed
 * (127.0.0.1 is 0100007F). The port is printed as a plain host-order number.
 */
export function decodeProcNetEndpoint(text: string): [string, number] | undefined {
  const m = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(text)
  if (m === null) return undefined
  const hex = m[1]
  const bytes = Buffer.alloc(hex.length / 2)
  for (let w = 0; w < hex.length / 8; w++) {
    const word = Number.parseInt(hex.slice(w * 8, w * 8 + 8), 16)
    if (os.endianness() === 'LE') bytes.writeUInt32LE(word, w * 4)
    else bytes.writeUInt32BE(word, w * 4)
  }
  const ip = canonicalBytes(bytes.length === 4 ? Buffer.concat([V4_MAPPED_PREFIX, bytes]) : bytes)
  return [ip, Number.parseInt(m[2], 16)]
}

const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff])

/**
 * One spelling per address so Node's strings and /proc's hex compare equal: IPv4 and
 * IPv4-mapped IPv6 ("::ffff:127.0.0.1") become "127.0.0.1"; other IPv6 addresses become
 * eight zero-padded lowercase groups. A zone ("%lo") is dropped. Undefined if not an IP.
 */
export function canonicalIp(ip: string): string | undefined {
  if (net.isIPv4(ip)) return ip.split('.').map(Number).join('.')
  const bytes = ipv6Bytes(ip)
  return bytes === undefined ? undefined : canonicalBytes(bytes)
}

function canonicalBytes(bytes: Buffer): string {
  if (bytes.subarray(0, 12).equals(V4_MAPPED_PREFIX)) return [...bytes.subarray(12)].join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16).padStart(4, '0'))
  return groups.join(':')
}

function ipv6Bytes(input: string): Buffer | undefined {
  let ip = input.replace(/%.*$/, '')
  if (!net.isIPv6(ip)) return undefined
  // A trailing dotted quad ("::ffff:1.2.3.4") becomes two hex groups.
  const lastColon = ip.lastIndexOf(':')
  if (ip.indexOf('.', lastColon) >= 0) {
    const q = ip.slice(lastColon + 1).split('.').map(Number)
    ip = `${ip.slice(0, lastColon + 1)}${((q[0] << 8) | q[1]).toString(16)}:${((q[2] << 8) | q[3]).toString(16)}`
  }
  const [head, tail] = ip.split('::') as [string, string | undefined]
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
  if (groups.length !== 8) return undefined
  const bytes = Buffer.alloc(16)
  groups.forEach((g, i) => bytes.writeUInt16BE(Number.parseInt(g, 16), i * 2))
  return bytes
}
