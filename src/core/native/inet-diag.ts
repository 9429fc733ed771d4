// The netlink message codec of one exact-socket query to the kernel's sock_diag (the
// addon's sockDiagQuery only carries bytes): "who owns the TCP socket with this 4-tuple?"
// answered from the kernel's socket hash, O(1), with the owner's uid and socket inode.
//
// Wire layout (linux/netlink.h, linux/inet_diag.h), host byte order except ports and
// addresses, which are network order:
//   nlmsghdr (16)        len u32, type u16 (SOCK_DIAG_BY_FAMILY 20 / NLMSG_ERROR 2), flags u16, seq u32, pid u32
//   inet_diag_req_v2 (56) family u8, protocol u8, ext u8, pad u8, states u32, sockid (48)
//   inet_diag_msg (72)   family u8, state u8, timer u8, retrans u8, sockid (48), expires u32,
//                        rqueue u32, wqueue u32, uid u32, inode u32 (attributes may follow)
//   inet_diag_sockid (48) sport be16, dport be16, src 16 bytes, dst 16 bytes, if u32, cookie u32[2]
// An exact query names the socket by ITS OWN local (src) and remote (dst) end.

import os from 'node:os'

export const NLMSG_HDR_LEN = 16
export const NLMSG_ERROR = 2
export const SOCK_DIAG_BY_FAMILY = 20
export const NLM_F_REQUEST = 0x1
export const AF_INET = 2
export const AF_INET6 = 10
export const IPPROTO_TCP = 6
export const SOCKID_LEN = 48
export const INET_DIAG_REQ_V2_LEN = 56
export const INET_DIAG_MSG_LEN = 72
export const REQUEST_LEN = NLMSG_HDR_LEN + INET_DIAG_REQ_V2_LEN
/** Room for a reply: the message and any attributes the kernel adds (none are asked for). */
export const REPLY_BUFFER_LEN = 1024
/** TCP states as the kernel numbers them (include/net/tcp_states.h). */
export const TCP_TIME_WAIT = 6
export const TCP_NEW_SYN_RECV = 12

/** One end of a TCP socket as the kernel sees it: address as 4 (IPv4) or 16 bytes. */
export interface InetEndpoint {
  address: Uint8Array
  port: number
}

export interface InetDiagQuery {
  family: typeof AF_INET | typeof AF_INET6
  /** The socket's own end. */
  local: InetEndpoint
  /** Its peer's end. */
  remote: InetEndpoint
  seq: number
}

export type InetDiagAnswer =
  | {kind: 'socket'; family: number; state: number; uid: number; inode: number; local: InetEndpoint; remote: InetEndpoint}
  /** The kernel's errno (positive): ENOENT when no socket has that 4-tuple. */
  | {kind: 'error'; errno: number}

const little = os.endianness() === 'LE'

function u32(buf: Buffer, value: number, offset: number): void {
  if (little) buf.writeUInt32LE(value >>> 0, offset)
  else buf.writeUInt32BE(value >>> 0, offset)
}
function u16(buf: Buffer, value: number, offset: number): void {
  if (little) buf.writeUInt16LE(value, offset)
  else buf.writeUInt16BE(value, offset)
}
function readU32(buf: Buffer, offset: number): number {
  return little ? buf.readUInt32LE(offset) : buf.readUInt32BE(offset)
}
function readU16(buf: Buffer, offset: number): number {
  return little ? buf.readUInt16LE(offset) : buf.readUInt16BE(offset)
}

function addressLength(family: number): number {
  if (family === AF_INET) return 4
  if (family === AF_INET6) return 16
  throw new RangeError(`inet_diag: family ${family} is neither AF_INET nor AF_INET6`)
}

/** The request bytes of an exact-socket query (no dump): 72 bytes. */
export function encodeInetDiagRequest(q: InetDiagQuery): Buffer {
  const alen = addressLength(q.family)
  for (const [what, e] of [
    ['local', q.local],
    ['remote', q.remote],
  ] as const) {
    if (e.address.length !== alen) throw new RangeError(`inet_diag: ${what} address has ${e.address.length} bytes, family needs ${alen}`)
    if (!Number.isInteger(e.port) || e.port < 0 || e.port > 0xffff) throw new RangeError(`inet_diag: ${what} port ${e.port} is out of range`)
  }
  const buf = Buffer.alloc(REQUEST_LEN)
  u32(buf, REQUEST_LEN, 0)
  u16(buf, SOCK_DIAG_BY_FAMILY, 4)
  u16(buf, NLM_F_REQUEST, 6)
  u32(buf, q.seq, 8)
  u32(buf, 0, 12) // pid 0: the kernel
  const r = NLMSG_HDR_LEN
  buf[r] = q.family
  buf[r + 1] = IPPROTO_TCP
  buf[r + 2] = 0 // no extensions: the fixed message has uid and inode
  u32(buf, 0xffffffff, r + 4) // every state
  const id = r + 8
  buf.writeUInt16BE(q.local.port, id)
  buf.writeUInt16BE(q.remote.port, id + 2)
  buf.set(q.local.address, id + 4)
  buf.set(q.remote.address, id + 20)
  u32(buf, 0, id + 36) // any interface
  u32(buf, 0xffffffff, id + 40) // INET_DIAG_NOCOOKIE
  u32(buf, 0xffffffff, id + 44)
  return buf
}

/**
 * Decode the kernel's reply to the query `q`. Throws (never guesses) on a reply that is cut,
 * malformed, for another sequence number, or about another socket than the one asked for.
 */
export function decodeInetDiagReply(reply: Buffer, q: InetDiagQuery): InetDiagAnswer {
  if (reply.length < NLMSG_HDR_LEN) throw new Error(`inet_diag: reply of ${reply.length} bytes is shorter than a netlink header`)
  const len = readU32(reply, 0)
  const type = readU16(reply, 4)
  const seq = readU32(reply, 8)
  if (len < NLMSG_HDR_LEN || len > reply.length) throw new Error(`inet_diag: netlink length ${len} does not fit the ${reply.length}-byte reply`)
  if (seq !== q.seq >>> 0) throw new Error(`inet_diag: reply for sequence ${seq}, asked ${q.seq}`)
  if (type === NLMSG_ERROR) {
    if (len < NLMSG_HDR_LEN + 4) throw new Error(`inet_diag: error reply of ${len} bytes has no error code`)
    const code = little ? reply.readInt32LE(NLMSG_HDR_LEN) : reply.readInt32BE(NLMSG_HDR_LEN)
    // 0 is an acknowledgement, which an exact query never gets instead of an answer.
    if (code >= 0) throw new Error(`inet_diag: acknowledgement (${code}) instead of an answer`)
    return {kind: 'error', errno: -code}
  }
  if (type !== SOCK_DIAG_BY_FAMILY) throw new Error(`inet_diag: unexpected netlink message type ${type}`)
  if (len < NLMSG_HDR_LEN + INET_DIAG_MSG_LEN) throw new Error(`inet_diag: answer of ${len} bytes is shorter than inet_diag_msg`)
  const m = NLMSG_HDR_LEN
  const family = reply[m]
  const alen = addressLength(family)
  const id = m + 4
  const local = {port: reply.readUInt16BE(id), address: Uint8Array.from(reply.subarray(id + 4, id + 4 + alen))}
  const remote = {port: reply.readUInt16BE(id + 2), address: Uint8Array.from(reply.subarray(id + 20, id + 20 + alen))}
  // An IPv4 query also finds an IPv6 socket connected to IPv4-mapped addresses (one hash).
  if (!sameEndpoint(local, q.local) || !sameEndpoint(remote, q.remote)) throw new Error('inet_diag: the answer is about another socket than the one asked for')
  const f = id + SOCKID_LEN
  return {kind: 'socket', family, state: reply[m + 1], uid: readU32(reply, f + 12), inode: readU32(reply, f + 16), local, remote}
}

const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff])

/** 4 bytes for IPv4 and IPv4-mapped IPv6, else the 16 bytes. */
function unmapped(address: Uint8Array): Buffer {
  const b = Buffer.from(address)
  return b.length === 16 && b.subarray(0, 12).equals(V4_MAPPED_PREFIX) ? b.subarray(12) : b
}

function sameEndpoint(a: InetEndpoint, b: InetEndpoint): boolean {
  return a.port === b.port && unmapped(a.address).equals(unmapped(b.address))
}
