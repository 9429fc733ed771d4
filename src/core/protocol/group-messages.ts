// The frames of a consistency group push on the delta port (doc/group-commit.md). A member's
// HELLO sets HelloFlag.GROUP; after BUNDLE_END the receiver journals and syncs the bundle but
// does not apply it, and answers JOURNALED. Once every member answered, the client sends
// GROUP_COMMIT on one member's session (the receiver writes the group record, the commit
// point, and answers GROUP_COMMITTED), then GROUP_APPLY on every member's session, each
// answered by the usual COMMITTED. Little-endian; decoders check every field before use.
import {ProtocolError} from '../errors.js'
import {BufferReader, BufferWriter, strByteLength} from '../util/binary.js'
import {MAX_GROUP_MEMBERS, MAX_MEMBER_PATH, type GroupMember} from '../group/record.js'
import {isGroupName, MAX_GROUP_NAME} from '../group/name.js'

const fail = (type: string) => (field: string, detail: string) => new ProtocolError('FRAME_MALFORMED', `malformed ${type} frame: ${field}: ${detail}`)

export function encodeJournaled(seq: number): Buffer {
  return new BufferWriter(8).u64(seq).finish()
}

export function decodeJournaled(b: Buffer): number {
  const r = new BufferReader(b, fail('JOURNALED'))
  const seq = r.u64('sequence')
  r.end('JOURNALED')
  return seq
}

export interface GroupCommit {
  name: string
  members: GroupMember[]
}

export function encodeGroupCommit(m: GroupCommit): Buffer {
  let size = strByteLength(m.name) + 2
  for (const x of m.members) size += strByteLength(x.path) + 8 + 32
  const w = new BufferWriter(size).str16(m.name).u16(m.members.length)
  for (const x of m.members) w.str16(x.path).u64(x.seq).bytes(x.replicaId).bytes(x.commitId)
  return w.finish()
}

export function decodeGroupCommit(b: Buffer): GroupCommit {
  const f = fail('GROUP_COMMIT')
  const r = new BufferReader(b, f)
  const name = r.str16('name', MAX_GROUP_NAME)
  if (!isGroupName(name)) throw f('name', `${JSON.stringify(name)} is not a group name`)
  const count = r.u16('member count')
  if (count < 1 || count > MAX_GROUP_MEMBERS) throw f('member count', `${count} is outside 1..${MAX_GROUP_MEMBERS}`)
  const members: GroupMember[] = []
  for (let i = 0; i < count; i++) {
    members.push({
      path: memberPath(r.str16('member path', MAX_MEMBER_PATH), f),
      seq: r.u64('member sequence'),
      replicaId: Buffer.from(r.bytes(16, 'replica id')),
      commitId: Buffer.from(r.bytes(16, 'commit id')),
    })
  }
  r.end('GROUP_COMMIT')
  return {name, members}
}

/** A path the receiver resolves under its root: not empty, no NUL, valid UTF-8 (a byte that is not decodes to U+FFFD). */
export function memberPath(p: string, f: (field: string, detail: string) => Error): string {
  if (p.length === 0 || p.includes('\0') || p.includes('\uFFFD')) throw f('member path', 'empty, or not valid UTF-8 without NUL')
  return p
}

export interface GroupApply {
  name: string
  groupSeq: number
}

export function encodeGroupApply(m: GroupApply): Buffer {
  return new BufferWriter(strByteLength(m.name) + 8).str16(m.name).u64(m.groupSeq).finish()
}

export function decodeGroupApply(b: Buffer): GroupApply {
  const f = fail('GROUP_APPLY')
  const r = new BufferReader(b, f)
  const name = r.str16('name', MAX_GROUP_NAME)
  if (!isGroupName(name)) throw f('name', `${JSON.stringify(name)} is not a group name`)
  const groupSeq = r.u64('group sequence')
  r.end('GROUP_APPLY')
  return {name, groupSeq}
}

/** GROUP_COMMITTED: the group sequence the record was written under. */
export const encodeGroupCommitted = (groupSeq: number): Buffer => new BufferWriter(8).u64(groupSeq).finish()

export function decodeGroupCommitted(b: Buffer): number {
  const r = new BufferReader(b, fail('GROUP_COMMITTED'))
  const seq = r.u64('group sequence')
  r.end('GROUP_COMMITTED')
  return seq
}
