// Who is on the other end of a local socket: the control socket, the receiver's ports and
// the tracker's TCP NBD export grant access by uid, and treat "unknown" as "deny".
// - unix sockets: SO_PEERCRED through the addon (the uid at connect time).
// - TCP: the kernel's sock_diag, asked through the addon for the one socket with the
//   peer's exact 4-tuple (O(1), inet-diag.ts); the answer counts only when that socket is
//   live (a non-zero inode: a process holds it). A peer that sent its bytes and closed at once
//   is a TIME_WAIT or orphaned socket with uid 0 and inode 0: refused, never taken as root.
// - Without the addon's query: the peer's row in /proc/net/tcp{,6} (proc-net-tcp.ts), with
//   the same rule; slower (it reads the table), never more trusting.

import net from 'node:net'

import {addon} from './binding.js'
import {
  AF_INET,
  AF_INET6,
  decodeInetDiagReply,
  encodeInetDiagRequest,
  type InetDiagQuery,
  REPLY_BUFFER_LEN,
  TCP_NEW_SYN_RECV,
  TCP_TIME_WAIT,
} from './inet-diag.js'
import {ipv6Bytes, procNetTcpOwner} from './proc-net-tcp.js'

export {canonicalIp, decodeProcNetEndpoint, parseProcNetTcp, type ProcNetTcpEntry} from './proc-net-tcp.js'

/**
 * The uid owning the other end of a connected socket, or undefined when it cannot be
 * known exactly (peer on another host or network namespace, connection already gone, a
 * socket no process holds, unix socket without the addon). Callers deciding access must
 * treat undefined as "deny".
 */
export function peerUid(socket: net.Socket): number | undefined {
  if (socket.remoteAddress !== undefined && socket.remotePort !== undefined) return tcpPeerUid(socket)
  const fd = (socket as unknown as {_handle?: {fd?: unknown}})._handle?.fd
  const binding = addon()
  if (binding === undefined || typeof fd !== 'number' || fd < 0) return undefined
  try {
    return binding.peerCred(fd).uid
  } catch {
    return undefined // not connected or not a unix socket: unknown
  }
}

/** How the TCP peer's owner is found: 'sock_diag' (the addon) or '/proc' (the fallback). */
export function tcpPeerMethod(): 'sock_diag' | '/proc' {
  return addon()?.sockDiagQuery === undefined ? '/proc' : 'sock_diag'
}

function tcpPeerUid(socket: net.Socket): number | undefined {
  const {localAddress, localPort, remoteAddress, remotePort} = socket
  if (localAddress === undefined || localPort === undefined || remoteAddress === undefined || remotePort === undefined) {
    return undefined
  }
  const query = addon()?.sockDiagQuery
  if (query === undefined) return procNetTcpOwner({address: localAddress, port: localPort}, {address: remoteAddress, port: remotePort})
  const peerEnd = inetEndpoint(remoteAddress, remotePort)
  const ourEnd = inetEndpoint(localAddress, localPort)
  if (peerEnd === undefined || ourEnd === undefined || peerEnd.family !== ourEnd.family) return undefined
  // The peer socket's own end is our remote end.
  return sockDiagOwner({family: peerEnd.family, local: peerEnd, remote: ourEnd, seq: nextSeq()}, query)
}

let seq = 0
function nextSeq(): number {
  seq = (seq + 1) >>> 0
  return seq
}

/** The owner of the socket `q` names, asked of the kernel; undefined unless it is live. */
export function sockDiagOwner(q: InetDiagQuery, query: (request: Uint8Array, reply: Uint8Array) => number): number | undefined {
  try {
    const reply = Buffer.alloc(REPLY_BUFFER_LEN)
    const n = query(encodeInetDiagRequest(q), reply)
    if (n > reply.length) return undefined // cut: never guess from a part
    const answer = decodeInetDiagReply(reply.subarray(0, n), q)
    if (answer.kind !== 'socket') return undefined // ENOENT: the peer is gone
    if (answer.inode === 0 || answer.state === TCP_TIME_WAIT || answer.state === TCP_NEW_SYN_RECV) return undefined
    return answer.uid
  } catch {
    return undefined // a malformed or unexpected reply, or the query failed: unknown, so denied
  }
}

/** A Node address and port as the kernel's family and bytes (IPv4-mapped IPv6 as IPv4). */
function inetEndpoint(ip: string, port: number): {family: typeof AF_INET | typeof AF_INET6; address: Uint8Array; port: number} | undefined {
  if (net.isIPv4(ip)) return {family: AF_INET, address: Uint8Array.from(ip.split('.').map(Number)), port}
  const bytes = ipv6Bytes(ip)
  if (bytes === undefined) return undefined
  const mapped = bytes.subarray(0, 12).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]))
  return mapped ? {family: AF_INET, address: Uint8Array.from(bytes.subarray(12)), port} : {family: AF_INET6, address: Uint8Array.from(bytes), port}
}
