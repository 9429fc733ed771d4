// ROOM_INFO (34): the receiver's answer to POINTS_REQUEST op ROOM, the read-only question
// `vdrep check` asks before a first sync (doc/protocol.md, "Room"): whether the path it named
// holds a replica and whose, how large it is, and how much room its filesystem has. Fixed size,
// every field checked on decode.
import {ProtocolError} from '../errors.js'
import {BufferReader, BufferWriter} from '../util/binary.js'

/** What is at the replica path. */
export const RoomReplica = {
  /** Nothing: a first full sync creates it. */
  MISSING: 0,
  /** A replica whose vdrep state names the hello's replica id. */
  THIS_SOURCE: 1,
  /** A replica whose state names another replica id (its sizes are not told). */
  OTHER_SOURCE: 2,
  /** A file or device without vdrep state: a seed, or something else. */
  NO_STATE: 3,
  /** A state file that cannot be read. */
  STATE_UNREADABLE: 4,
} as const
export type RoomReplicaKind = (typeof RoomReplica)[keyof typeof RoomReplica]

export const RoomFlag = {
  /** The replica is a block device: its size is fixed, the filesystem's room does not matter. */
  DEVICE: 1,
} as const

export const ROOM_INFO_SIZE = 1 + 1 + 8 + 8 + 8 + 8

export interface RoomInfo {
  replica: RoomReplicaKind
  flags: number
  /** The replica's size (a device's size), bytes; 0 when MISSING or OTHER_SOURCE. */
  replicaSize: number
  /** Bytes the replica's file takes on disk (st_blocks × 512; 0 for a device, MISSING or OTHER_SOURCE). */
  replicaAllocated: number
  /** Bytes free to the receiver's user on the replica's filesystem (statfs bavail × bsize). */
  freeBytes: number
  /** The filesystem's size (statfs blocks × bsize). */
  totalBytes: number
}

const fail = (field: string, detail: string) => new ProtocolError('FRAME_MALFORMED', `malformed ROOM_INFO frame: ${field}: ${detail}`)

export function encodeRoomInfo(m: RoomInfo): Buffer {
  return new BufferWriter(ROOM_INFO_SIZE).u8(m.replica).u8(m.flags).u64(m.replicaSize).u64(m.replicaAllocated).u64(m.freeBytes).u64(m.totalBytes).finish()
}

export function decodeRoomInfo(b: Buffer): RoomInfo {
  const r = new BufferReader(b, fail)
  const replica = r.u8('replica')
  if (replica > RoomReplica.STATE_UNREADABLE) throw fail('replica', `unknown kind ${replica}`)
  const flags = r.u8('flags')
  if (flags & ~RoomFlag.DEVICE) throw fail('flags', `reserved bits set: 0x${flags.toString(16)}`)
  const m: RoomInfo = {
    replica: replica as RoomReplicaKind,
    flags,
    replicaSize: r.u64('replica size'),
    replicaAllocated: r.u64('replica allocated'),
    freeBytes: r.u64('free bytes'),
    totalBytes: r.u64('total bytes'),
  }
  r.end('ROOM_INFO')
  if (m.freeBytes > m.totalBytes) throw fail('free bytes', `${m.freeBytes} exceeds the filesystem's ${m.totalBytes}`)
  if ((replica === RoomReplica.MISSING || replica === RoomReplica.OTHER_SOURCE) && (m.replicaSize !== 0 || m.replicaAllocated !== 0))
    throw fail('replica size', 'must be 0 for a missing replica or another source')
  return m
}
