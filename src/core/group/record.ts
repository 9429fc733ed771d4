// A group record: the commit point of one consistency group push on the replica host
// (doc/group-commit.md). It is written, synced and renamed into place only once every member's
// bundle is journaled and synced (held, not applied); from then on every member is applied,
// by the sessions or by recovery. No record, no member applied: all members or none.
//
// Layout (little-endian), `<root>/.vdrep-groups/<name>/<group seq, 16 digits>.vdrep-group`:
//   magic "VDRGRP01" (8) | version u16 | reserved u16 | member count u32 | group seq u64 |
//   committed ms u64 | name (u16 length + UTF-8)
//   per member: path relative to the root (u16 length + UTF-8) | sequence u64 |
//     replica id (16) | commit id (16)
//   crc32 of everything before it u32
import zlib from 'node:zlib'
import {StateError} from '../errors.js'
import {BufferReader, BufferWriter, strByteLength} from '../util/binary.js'
import {isGroupName} from './name.js'

export const GROUP_MAGIC = Buffer.from('VDRGRP01', 'ascii')
export const GROUP_VERSION = 1
/** Most members one group may have (a VM's disks). */
export const MAX_GROUP_MEMBERS = 64
export const MAX_MEMBER_PATH = 4096
const FIXED = 8 + 2 + 2 + 4 + 8 + 8

export interface GroupMember {
  /** The replica's path relative to the receiver's root, as the member's HELLO named it. */
  path: string
  seq: number
  replicaId: Buffer
  commitId: Buffer
}

export interface GroupRecord {
  name: string
  groupSeq: number
  committedMs: number
  members: GroupMember[]
}

const corrupt = (field: string, detail: string) => new StateError('GROUP_RECORD_CORRUPT', `group record: ${field}: ${detail}`)

export function encodeGroupRecord(r: GroupRecord): Buffer {
  let size = FIXED + strByteLength(r.name) + 4
  for (const m of r.members) size += strByteLength(m.path) + 8 + 16 + 16
  const w = new BufferWriter(size).bytes(GROUP_MAGIC).u16(GROUP_VERSION).u16(0).u32(r.members.length).u64(r.groupSeq).u64(r.committedMs).str16(r.name)
  for (const m of r.members) w.str16(m.path).u64(m.seq).bytes(m.replicaId).bytes(m.commitId)
  const body = w.finish()
  const out = Buffer.alloc(body.length + 4)
  body.copy(out)
  out.writeUInt32LE(zlib.crc32(body), body.length)
  return out
}

/** Checks the size, magic, version and checksum before reading a field. */
export function decodeGroupRecord(b: Buffer): GroupRecord {
  if (b.length < FIXED + 2 + 4) throw corrupt('length', `${b.length} bytes is too short`)
  if (!b.subarray(0, 8).equals(GROUP_MAGIC)) throw corrupt('magic', 'not a vdrep group record')
  const body = b.subarray(0, b.length - 4)
  if (b.readUInt32LE(b.length - 4) !== zlib.crc32(body)) throw corrupt('crc32', 'mismatch (torn or damaged)')
  const r = new BufferReader(body, corrupt)
  r.bytes(8, 'magic')
  const version = r.u16('version')
  if (version !== GROUP_VERSION) throw corrupt('version', `${version} is not supported`)
  r.u16('reserved')
  const count = r.u32('member count')
  if (count < 1 || count > MAX_GROUP_MEMBERS) throw corrupt('member count', `${count} is outside 1..${MAX_GROUP_MEMBERS}`)
  const groupSeq = r.u64('group sequence')
  const committedMs = r.u64('committed time')
  const name = r.str16('name', 64)
  if (!isGroupName(name)) throw corrupt('name', JSON.stringify(name))
  const members: GroupMember[] = []
  for (let i = 0; i < count; i++) {
    members.push({
      path: r.str16('member path', MAX_MEMBER_PATH),
      seq: r.u64('member sequence'),
      replicaId: Buffer.from(r.bytes(16, 'replica id')),
      commitId: Buffer.from(r.bytes(16, 'commit id')),
    })
  }
  r.end('group record')
  for (const m of members)
    if (m.path.length === 0 || m.path.includes('\0') || m.path.includes('\uFFFD')) throw corrupt('member path', 'empty, or not valid UTF-8 without NUL')
  return {name, groupSeq, committedMs, members}
}
