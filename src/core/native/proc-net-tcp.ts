// The pure-TS fallback for the owner of a TCP peer: its row in /proc/net/tcp{,6}. Used only
// without the addon's sock_diag query (peer-credentials.ts): it reads the whole table, so it
// costs O(sockets) per call, and it never pretends: a row without a socket inode (a TIME_WAIT
// or orphaned socket, which /proc shows as uid 0) names no owner.

import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'

// TIME_WAIT sockets are owned by the kernel (uid 0 in /proc), never a live peer.
const TCP_TIME_WAIT = 0x06

/** The uid owning the live socket local=`peer`, remote=`us`; undefined when none does. */
export function procNetTcpOwner(us: {address: string; port: number}, peer: {address: string; port: number}): number | undefined {
  const ourLocal = canonicalIp(us.address)
  const ourRemote = canonicalIp(peer.address)
  if (ourLocal === undefined || ourRemote === undefined) return undefined
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = fs.readFileSync(file, 'utf8')
    } catch {
      continue // no IPv6, or no /proc: try the other, then give up
    }
    for (const e of parseProcNetTcp(text)) {
      if (e.localAddress === ourRemote && e.localPort === peer.port && e.remoteAddress === ourLocal && e.remotePort === us.port) {
        // The 4-tuple is unique among sockets: this row is the peer, owned or not.
        return e.state === TCP_TIME_WAIT || e.inode === 0 ? undefined : e.uid
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
  /** The socket's inode; 0 when no process holds it (TIME_WAIT, orphaned). */
  inode: number
}

/** Parse the text of /proc/net/tcp or /proc/net/tcp6 (header line and bad lines skipped). */
export function parseProcNetTcp(text: string): ProcNetTcpEntry[] {
  const entries: ProcNetTcpEntry[] = []
  for (const line of text.split('\n')) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    const f = line.trim().split(/\s+/)
    if (f.length < 10 || !/^\d+:$/.test(f[0])) continue
    const local = decodeProcNetEndpoint(f[1])
    const remote = decodeProcNetEndpoint(f[2])
    const state = Number.parseInt(f[3], 16)
    const uid = Number(f[7])
    const inode = Number(f[9])
    if (local === undefined || remote === undefined || !Number.isInteger(uid) || !Number.isInteger(inode)) continue
    entries.push({localAddress: local[0], localPort: local[1], remoteAddress: remote[0], remotePort: remote[1], state, uid, inode})
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

export function ipv6Bytes(input: string): Buffer | undefined {
  let ip = input.replace(/%.*$/, '')
  if (!net.isIPv6(ip)) return undefined
  // A trailing dotted quad ("::ffff:1.2.3.4") becomes two hex groups.
  const lastColon = ip.lastIndexOf(':')
  if (ip.indexOf('.', lastColon) >= 0) {
    const q = ip
      .slice(lastColon + 1)
      .split('.')
      .map(Number)
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
