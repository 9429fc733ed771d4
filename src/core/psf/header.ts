// The .psf header slot codec (format v3; v1 and v2 are still read). Little-endian throughout.
//
//  off size field
//    0    8 magic "VDREPPSF"
//    8    2 version (3)
//   10    2 activity log length: hot extents kept (v3: 1..65535; v1/v2: reserved, read as 0)
//   12    4 flags (HeaderFlag)
//   16    8 slot counter: the valid slot with the higher counter is current
//   24    8 disk size in bytes
//   32    4 block size in bytes (power of two, 4 KiB .. 4 MiB)
//   36    1 hash algorithm (HashAlgo)
//   37    1 activity log extent size, log2 of bytes (v3: log2(block size)..30; v1/v2: reserved)
//   38    2 reserved
//   40   16 replica id
//   56    8 generation (bumped by every proved full sync)
//   64    8 last applied sequence (delta pushes)
//   72    8 last successful sync, ms since the epoch (0 = never)
//   80    8 source size recorded when a tracker stopped
//   88    8 source mtime, ns
//   96    8 source ctime, ns
//  104    8 sequence of the push in flight (0 = none)
//  112    8 created, ms since the epoch
//  120    1 disk identity kind (IdentityKind: 0 none, 1 file, 2 block device)
//  121    1 reserved
//  122    2 identity path length p (<= MAX_IDENTITY_PATH)
//  124    8 identity dev (file: st_dev; block device: st_rdev)
//  132    8 identity ino (file: st_ino; block device: its size in bytes)
//  140    4 settings length n
//  144    p the disk's canonical path when bound, UTF-8 (messages only)
//  144+p  n settings JSON (p + n <= MAX_SETTINGS)
// 4076   16 last commit id (the replica's chain: set by each proved full sync and committed
//          push; zeros = none yet)
// 4092    4 crc32 of bytes 0..4091
//
// Format v1 ended the fixed part at 120 (settings length at 120, settings at 124) and had no
// identity: it decodes with identity kind NONE (change-record/identity.ts decides about it).
// Formats v1 and v2 have no activity log: they decode with alExtents 0, and their owner
// migrates them to v3 on open (psf-file.ts) before anything writes a header.
import zlib from 'node:zlib'
import {StateError} from '../errors.js'
import {isKnownHashAlgo} from '../hash/block-hash.js'
import {BufferReader, BufferWriter} from '../util/binary.js'
import {SLOT_SIZE} from './layout.js'
import {decodeSettings, encodeSettings, type ReplicationSettings} from './settings.js'
import {IdentityKind, MAX_IDENTITY_PATH, NO_IDENTITY, type DiskIdentity, type IdentityKindId} from './disk-identity.js'

export const PSF_MAGIC = Buffer.from('VDREPPSF', 'ascii')
export const PSF_VERSION = 3
/** The format before the disk identity: still read, never written. */
export const PSF_VERSION_1 = 1
/** The format before the activity log: still read, never written (migrated by the owner). */
export const PSF_VERSION_2 = 2
/** Activity log defaults: 4 MiB extents, two pages of slots (2026 extents, an 8 GiB span). */
export const DEFAULT_AL_EXTENT_SHIFT = 22
export const DEFAULT_AL_EXTENTS = 2026
export const MAX_AL_EXTENTS = 65535
export const MAX_AL_EXTENT_SHIFT = 30
const FIXED_SIZE = 144
const FIXED_SIZE_V1 = 124
const CRC_OFFSET = SLOT_SIZE - 4
/** The last commit id sits at the end of the slot, apart from the fixed fields and the settings. */
const LAST_COMMIT_OFFSET = CRC_OFFSET - 16
export const MAX_SETTINGS = LAST_COMMIT_OFFSET - FIXED_SIZE
export const MIN_BLOCK_SIZE = 4096
export const MAX_BLOCK_SIZE = 4 << 20

export const HeaderFlag = {
  /** The tracker stopped cleanly (SIGTERM/SIGINT) and recorded the source's stat. */
  CLEAN_SHUTDOWN: 1 << 0,
  /** The block hash index matches the replica as of the last sync. */
  INDEX_VALID: 1 << 1,
  /** The change record cannot be trusted: the next sync must be a full sync. */
  NEEDS_FULL_SYNC: 1 << 2,
  /** The replica host refused the last sync: the replica moved on without vdrep (REPLICA_DIVERGED). */
  REPLICA_DIVERGED: 1 << 3,
  /** The replica host refused the last sync: the replica belongs to another source (REPLICA_FOREIGN). */
  REPLICA_FOREIGN: 1 << 4,
  /**
   * Something may have written the disk without the tracker seeing it (another program wrote
   * it while the tracker ran, or the tracker could not watch for that): the record is trusted
   * again only after a local verification of every block against the block hash index.
   */
  VERIFY_NEEDED: 1 << 5,
  /** The replica host refused the last sync: the replica was promoted by a failover (REPLICA_PROMOTED). */
  REPLICA_PROMOTED: 1 << 6,
  /** The last push was final (`push --final`): this disk handed over to its replica (doc/failover.md). */
  HANDED_OVER: 1 << 7,
  /**
   * `vdrep config <disk> target` named another replica: the record's replica binding (id,
   * sequence, commit chain) was reset and the next sync is a full sync that says so.
   */
  TARGET_CHANGED: 1 << 8,
} as const

/** The refusals a .psf records for `status`, until a full sync proves the replica again. */
export type ReplicaRefusal = 'REPLICA_DIVERGED' | 'REPLICA_FOREIGN' | 'REPLICA_PROMOTED'

export interface PsfHeader {
  flags: number
  counter: bigint
  diskSize: number
  blockSize: number
  hashAlgo: number
  replicaId: Buffer
  generation: number
  lastSeq: number
  lastSyncMs: number
  sourceSize: number
  sourceMtimeNs: bigint
  sourceCtimeNs: bigint
  pendingSeq: number
  createdMs: number
  /** The disk this record belongs to (NONE: a format-1 record). */
  identity: DiskIdentity
  settings: ReplicationSettings
  /** The commit id of the last proved full sync or committed push (16 bytes; zeros: none). */
  lastCommit: Buffer
  /** Hot extents the activity log keeps (0: a format 1 or 2 record, not migrated yet). */
  alExtents: number
  /** log2 of the activity log's extent size in bytes (0 with alExtents 0). */
  alExtentShift: number
}

/** Whether an activity log setting pair is valid for a block size (alExtents 0: none). */
export function validActivityLog(alExtents: number, alExtentShift: number, blockSize: number): boolean {
  return (
    Number.isInteger(alExtents) &&
    alExtents >= 1 &&
    alExtents <= MAX_AL_EXTENTS &&
    Number.isInteger(alExtentShift) &&
    2 ** alExtentShift >= blockSize &&
    alExtentShift <= MAX_AL_EXTENT_SHIFT
  )
}

export function validBlockSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_BLOCK_SIZE && n <= MAX_BLOCK_SIZE && (n & (n - 1)) === 0
}

export function encodeHeader(h: PsfHeader): Buffer {
  const settings = encodeSettings(h.settings)
  const idPath = identityPathBytes(h.identity.path)
  if (settings.length + idPath.length > MAX_SETTINGS) {
    throw new StateError(
      'PSF_SETTINGS_TOO_LARGE',
      `the replication settings take ${settings.length} bytes, more than the ${MAX_SETTINGS - idPath.length} a .psf header holds beside the disk's path`,
    )
  }
  // Every header written is v3: a v1/v2 record is migrated (its activity log added) first.
  if (!validActivityLog(h.alExtents, h.alExtentShift, h.blockSize)) {
    throw new RangeError(`activity log settings ${h.alExtents} x 2^${h.alExtentShift} are not valid for blocks of ${h.blockSize} bytes`)
  }
  const w = new BufferWriter(SLOT_SIZE)
  w.bytes(PSF_MAGIC).u16(PSF_VERSION).u16(h.alExtents).u32(h.flags).u64(h.counter)
  w.u64(h.diskSize).u32(h.blockSize).u8(h.hashAlgo).u8(h.alExtentShift).skip(2)
  w.bytes(h.replicaId).u64(h.generation).u64(h.lastSeq).u64(h.lastSyncMs)
  w.u64(h.sourceSize).u64(h.sourceMtimeNs).u64(h.sourceCtimeNs).u64(h.pendingSeq).u64(h.createdMs)
  w.u8(h.identity.kind).u8(0).u16(idPath.length).u64(h.identity.dev).u64(h.identity.ino)
  w.u32(settings.length).bytes(idPath).bytes(settings)
  const buf = w.finish(true)
  if (h.lastCommit.length !== 16) throw new RangeError('a commit id is 16 bytes')
  h.lastCommit.copy(buf, LAST_COMMIT_OFFSET)
  buf.writeUInt32LE(zlib.crc32(buf.subarray(0, CRC_OFFSET)), CRC_OFFSET)
  return buf
}

/** The path as stored: UTF-8, cut to MAX_IDENTITY_PATH bytes at a character boundary. */
function identityPathBytes(p: string): Buffer {
  let b = Buffer.from(p, 'utf8')
  if (b.length <= MAX_IDENTITY_PATH) return b
  b = b.subarray(0, MAX_IDENTITY_PATH)
  while (b.length > 0 && (b[b.length - 1] & 0xc0) === 0x80) b = b.subarray(0, b.length - 1)
  return b.length > 0 && b[b.length - 1] >= 0xc0 ? b.subarray(0, b.length - 1) : b
}

function isIdentityKind(k: number): k is IdentityKindId {
  return k === IdentityKind.NONE || k === IdentityKind.FILE || k === IdentityKind.BLOCK_DEVICE
}

const corrupt = (field: string, detail: string) => new StateError('PSF_CORRUPT', `the .psf header is corrupt: ${field}: ${detail}`)

/** Why a slot cannot be used: 'foreign' (not a .psf at all) or a corruption. */
export type SlotResult = {ok: true; header: PsfHeader} | {ok: false; foreign: boolean; error: StateError}

export function decodeHeader(slot: Buffer): SlotResult {
  try {
    if (slot.length < SLOT_SIZE) return {ok: false, foreign: false, error: corrupt('slot', `only ${slot.length} bytes`)}
    if (!slot.subarray(0, 8).equals(PSF_MAGIC)) {
      return {ok: false, foreign: true, error: new StateError('PSF_FOREIGN', 'this file is not a vdrep state file (bad magic)')}
    }
    if (slot.readUInt32LE(CRC_OFFSET) !== zlib.crc32(slot.subarray(0, CRC_OFFSET))) {
      return {ok: false, foreign: false, error: corrupt('checksum', 'crc32 mismatch')}
    }
    const r = new BufferReader(slot, corrupt)
    r.bytes(8, 'magic')
    const version = r.u16('version')
    if (version !== PSF_VERSION && version !== PSF_VERSION_2 && version !== PSF_VERSION_1) {
      return {
        ok: false,
        foreign: false,
        error: new StateError('PSF_VERSION', `the .psf has format version ${version}; this vdrep reads versions ${PSF_VERSION_1} to ${PSF_VERSION}`, {
          hint: 'use the vdrep release that wrote it, or run `vdrep init --force` and a full sync',
        }),
      }
    }
    const alField = r.u16('activity log length')
    const flags = r.u32('flags')
    const counter = r.big64('counter')
    const diskSize = r.u64('disk size')
    const blockSize = r.u32('block size')
    if (!validBlockSize(blockSize)) throw corrupt('block size', `${blockSize} is not a power of two between 4 KiB and 4 MiB`)
    const hashAlgo = r.u8('hash algorithm')
    if (!isKnownHashAlgo(hashAlgo)) throw corrupt('hash algorithm', `unknown id ${hashAlgo}`)
    const shiftField = r.u8('activity log extent size')
    r.bytes(2, 'reserved')
    const hasLog = version === PSF_VERSION
    const alExtents = hasLog ? alField : 0
    const alExtentShift = hasLog ? shiftField : 0
    if (hasLog && !validActivityLog(alExtents, alExtentShift, blockSize)) {
      throw corrupt('activity log', `${alExtents} extents of 2^${alExtentShift} bytes (blocks of ${blockSize})`)
    }
    const replicaId = Buffer.from(r.bytes(16, 'replica id'))
    const generation = r.u64('generation')
    const lastSeq = r.u64('last sequence')
    const lastSyncMs = r.u64('last sync time')
    const sourceSize = r.u64('source size')
    const sourceMtimeNs = r.big64('source mtime')
    const sourceCtimeNs = r.big64('source ctime')
    const pendingSeq = r.u64('pending sequence')
    const createdMs = r.u64('created time')
    const id = version === PSF_VERSION_1 ? {...NO_IDENTITY, pathLength: 0} : readIdentityFields(r)
    const settingsLength = r.u32('settings length')
    const room = (version === PSF_VERSION_1 ? CRC_OFFSET - FIXED_SIZE_V1 : MAX_SETTINGS) - id.pathLength
    if (settingsLength > room) throw corrupt('settings length', `${settingsLength} exceeds ${room}`)
    const identity: DiskIdentity = {kind: id.kind, dev: id.dev, ino: id.ino, path: r.bytes(id.pathLength, 'identity path').toString('utf8')}
    const settings = decodeSettings(r.bytes(settingsLength, 'settings'))
    // A version-1 slot has no commit id (its settings could reach into those bytes): none yet.
    const lastCommit = version === PSF_VERSION_1 ? Buffer.alloc(16) : Buffer.from(slot.subarray(LAST_COMMIT_OFFSET, LAST_COMMIT_OFFSET + 16))
    return {
      ok: true,
      header: {
        flags,
        counter,
        diskSize,
        blockSize,
        hashAlgo,
        replicaId,
        generation,
        lastSeq,
        lastSyncMs,
        sourceSize,
        sourceMtimeNs,
        sourceCtimeNs,
        pendingSeq,
        createdMs,
        identity,
        settings,
        lastCommit,
        alExtents,
        alExtentShift,
      },
    }
  } catch (err) {
    if (err instanceof StateError) return {ok: false, foreign: false, error: err}
    throw err
  }
}

/** The identity fields (v2) up to the settings length; the path (after it) comes later. */
function readIdentityFields(r: BufferReader): {kind: IdentityKindId; dev: bigint; ino: bigint; pathLength: number} {
  const kind = r.u8('identity kind')
  if (!isIdentityKind(kind)) throw corrupt('identity kind', `unknown kind ${kind}`)
  r.u8('reserved')
  const pathLength = r.u16('identity path length')
  if (pathLength > MAX_IDENTITY_PATH) throw corrupt('identity path length', `${pathLength} exceeds ${MAX_IDENTITY_PATH}`)
  const dev = r.big64('identity dev')
  const ino = r.big64('identity ino')
  if (kind === IdentityKind.NONE && (dev !== 0n || ino !== 0n || pathLength !== 0)) throw corrupt('identity', 'kind none with fields set')
  return {kind, dev, ino, pathLength}
}

/**
 * Pick the current header from the two slots: the valid one with the higher counter.
 * A torn write of one slot falls back to the other. Both foreign: not a .psf. Both bad: corrupt.
 */
export function pickHeader(slotA: Buffer, slotB: Buffer): {header: PsfHeader; slot: 0 | 1} {
  const a = decodeHeader(slotA)
  const b = decodeHeader(slotB)
  if (a.ok && b.ok) return a.header.counter >= b.header.counter ? {header: a.header, slot: 0} : {header: b.header, slot: 1}
  if (a.ok) return {header: a.header, slot: 0}
  if (b.ok) return {header: b.header, slot: 1}
  if (a.foreign && b.foreign) throw a.error
  const err = a.foreign ? b.error : a.error
  throw new StateError(err.code, err.message, {
    hint: 'the change record cannot be trusted: run `vdrep init --force <disk> --to <target>` and then `vdrep fullsync <disk>`',
  })
}
