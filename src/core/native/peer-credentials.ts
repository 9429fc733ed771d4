// Who is on the other end of a local socket: the control socket and the receiver's ports
// grant access by uid. Unix sockets ask the kernel (SO_PEERCRED, through the addon); TCP
// loopback peers are found in /proc/net/tcp{,6} in pure TS, with or without the addon.

import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'

import {addon} from './binding.js'

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
  const binding = addon()
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
