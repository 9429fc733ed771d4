// The frames of a reprotect (doc/failover.md): the promoted side names the old source and its
// chain (REPROTECT), the old primary's host answers with the blocks its disk holds that the
// promoted side lacks (OWED, in pieces), and the client says they are recorded (OWED_RECORDED,
// empty) before the old primary's disk becomes a replica. Little-endian; each decoder checks
// every field before the caller uses any.
import {ProtocolError} from '../errors.js'
import {BufferReader, BufferWriter} from '../util/binary.js'

export const ReprotectFlag = {
  /** The user accepts that the old primary's writes are overwritten without a restore point (`--discard-divergent`). */
  DISCARD_DIVERGENT: 1 << 0,
} as const
export const KNOWN_REPROTECT_FLAGS = ReprotectFlag.DISCARD_DIVERGENT
/** Bits in one OWED frame: 4 MiB of bitmap, under MAX_PAYLOAD. */
export const MAX_OWED_BITS = 1 << 25

const fail = (type: string) => (field: string, detail: string) => new ProtocolError('FRAME_MALFORMED', `malformed ${type} frame: ${field}: ${detail}`)

export interface Reprotect {
  /** The replica id of the source the promoted replica had (the old primary's record). */
  oldReplicaId: Buffer
  /** The commit before the link (zeros: none): an old primary that lost the last COMMITTED holds it. */
  linkPrev: Buffer
  /** The promoted record's last sequence: the new replica's state starts there. */
  seq: number
  epoch: number
  flags: number
}

export function encodeReprotect(m: Reprotect): Buffer {
  return new BufferWriter(16 + 16 + 8 + 4 + 4).bytes(m.oldReplicaId).bytes(m.linkPrev).u64(m.seq).u32(m.epoch).u32(m.flags).finish()
}

export function decodeReprotect(b: Buffer): Reprotect {
  const r = new BufferReader(b, fail('REPROTECT'))
  const m: Reprotect = {
    oldReplicaId: Buffer.from(r.bytes(16, 'old replica id')),
    linkPrev: Buffer.from(r.bytes(16, 'link prev')),
    seq: r.u64('sequence'),
    epoch: r.u32('epoch'),
    flags: r.u32('flags'),
  }
  r.end('REPROTECT')
  if (m.flags & ~KNOWN_REPROTECT_FLAGS) throw fail('REPROTECT')('flags', `unknown bits 0x${m.flags.toString(16)}`)
  return m
}

export interface Owed {
  /** First block this piece describes: a multiple of 8. */
  first: number
  /** The disk's block count: the pieces end when first + bits = total. */
  total: number
  /** Blocks first .. first + n - 1, one bit each, LSB first. */
  n: number
  bits: Buffer
}

export function encodeOwed(m: Owed): Buffer {
  return new BufferWriter(8 + 8 + 4 + m.bits.length).u64(m.first).u64(m.total).u32(m.n).bytes(m.bits).finish()
}

/** `total`: the block count the client expects; a piece for another disk is malformed. */
export function decodeOwed(b: Buffer, total: number): Owed {
  const f = fail('OWED')
  const r = new BufferReader(b, f)
  const first = r.u64('first')
  const t = r.u64('total')
  const n = r.u32('n')
  if (t !== total) throw f('total', `${t} blocks, this disk has ${total}`)
  if (first % 8 !== 0) throw f('first', `${first} is not a multiple of 8`)
  if (n < 1 || n > MAX_OWED_BITS) throw f('n', `${n} is outside 1..${MAX_OWED_BITS}`)
  if (first + n > total) throw f('n', `blocks ${first}+${n} pass the disk's ${total}`)
  const bits = Buffer.from(r.bytes(Math.ceil(n / 8), 'bits'))
  r.end('OWED')
  // Bits past n in the last byte would name blocks the piece does not cover.
  if (n % 8 !== 0 && bits[bits.length - 1] >> (n % 8) !== 0) throw f('bits', 'bits set past n')
  return {first, total: t, n, bits}
}
