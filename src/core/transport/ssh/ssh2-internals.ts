// The one place where vdrep reaches into ssh2's private fields (the socket under a Client and
// its protocol object). Two fast paths use them, each measured on a push (see where they are
// used): corking the socket for a tick so a burst of SSH packets leaves in one writev, and
// answering sshd's host-key announcement with an IGNORE instead of a proof request.
//
// Fenced three ways, because none of this is ssh2's public API:
// - package.json pins ssh2 exactly (SSH2_VERSION_READ); another installed version turns the
//   fast paths off;
// - at connect, a shape check looks at every field used here; anything missing or of another
//   type turns the fast paths off (the public API alone is used, and the log says why);
// - VDREP_SSH2_INTERNALS=0 turns them off by hand (a suspected ssh2 problem, a bisect).
// With the fast paths off everything still works; a push is a little slower (40 ms more at
// login and more system calls per frame on a slow link).

import {createRequire} from 'node:module'
import type {Socket} from 'node:net'
import type {Client} from 'ssh2'

/** The ssh2 release whose sources this file was written against; package.json pins it. */
export const SSH2_VERSION_READ = '1.17.0'

/** Set to 0 (or false, off, no) to use ssh2's public API only. */
export const SSH2_INTERNALS_SWITCH = 'VDREP_SSH2_INTERNALS'

/** What the fast paths need from one connected ssh2 Client. */
export interface Ssh2Internals {
  /** The TCP socket ssh2 writes its packets to (corked by the write coalescer). */
  readonly socket: Socket
  /** From now on, sshd's host-key announcements get an IGNORE, not a proof request. */
  skipHostKeysProve(): void
}

export type Ssh2InternalsCheck = {internals: Ssh2Internals; reason?: undefined} | {internals?: undefined; reason: string}

type Handler = (proto: unknown, ...args: unknown[]) => void

/** The parts of ssh2 1.17's Protocol used here (lib/protocol/Protocol.js). */
interface Proto {
  _handlers: Record<string, Handler | undefined>
  _packetRW: {write: {allocStart: number; alloc(n: number): Buffer; finalize(packet: Buffer): Buffer}}
  _cipher: {encrypt(packet: Buffer): void}
  _kexinit: unknown
  requestFailure(): void
}

const SSH_MSG_IGNORE = 2
const HOSTKEYS_ANNOUNCEMENT = 'hostkeys-00@openssh.com'

/** True unless the environment switch turns the internals off. */
export function ssh2InternalsAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env[SSH2_INTERNALS_SWITCH]?.trim().toLowerCase()
  return !(v === '0' || v === 'false' || v === 'off' || v === 'no')
}

/** The ssh2 version installed beside vdrep, or undefined when it cannot be read. */
export function installedSsh2Version(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url)('ssh2/package.json') as {version?: unknown}
    return typeof pkg.version === 'string' ? pkg.version : undefined
  } catch {
    return undefined
  }
}

/**
 * Why these fields are not the shape this file was written for, or undefined when they are.
 * `client` is an ssh2 Client on which connect() was called (the socket and the protocol object
 * exist from then on).
 */
export function ssh2ShapeProblem(client: unknown): string | undefined {
  const c = client as {_sock?: unknown; _protocol?: unknown} | null
  if (typeof c !== 'object' || c === null) return 'not an ssh2 client'
  const sock = c._sock as Partial<Socket> | undefined
  if (typeof sock !== 'object' || sock === null) return 'client._sock is missing'
  if (typeof sock.cork !== 'function' || typeof sock.uncork !== 'function' || typeof sock.writableLength !== 'number') return 'client._sock is not a net.Socket'
  const proto = c._protocol as Partial<Proto> | undefined
  if (typeof proto !== 'object' || proto === null) return 'client._protocol is missing'
  if (typeof proto._handlers !== 'object' || proto._handlers === null) return 'protocol._handlers is missing'
  if (typeof proto._handlers['GLOBAL_REQUEST'] !== 'function') return 'protocol._handlers.GLOBAL_REQUEST is not a function'
  const debug = proto._handlers['DEBUG']
  if (debug !== undefined && typeof debug !== 'function') return 'protocol._handlers.DEBUG is not a function'
  const w = proto._packetRW?.write
  if (typeof w !== 'object' || w === null) return 'protocol._packetRW.write is missing'
  if (typeof w.allocStart !== 'number' || typeof w.alloc !== 'function' || typeof w.finalize !== 'function')
    return 'protocol._packetRW.write is not a PacketWriter'
  if (typeof proto._cipher?.encrypt !== 'function') return 'protocol._cipher.encrypt is not a function'
  if (!('_kexinit' in proto)) return 'protocol._kexinit is missing'
  if (typeof proto.requestFailure !== 'function') return 'protocol.requestFailure is not a function'
  return undefined
}

/**
 * Checks the switch, the installed version and the shape; call right after client.connect().
 * `version` is for tests (default: the installed one).
 */
export function openSsh2Internals(client: Client, opts: {env?: NodeJS.ProcessEnv; version?: string} = {}): Ssh2InternalsCheck {
  if (!ssh2InternalsAllowed(opts.env)) return {reason: `${SSH2_INTERNALS_SWITCH} is off`}
  const version = opts.version ?? installedSsh2Version()
  if (version !== SSH2_VERSION_READ)
    return {reason: `ssh2 ${version ?? '(version unknown)'} is installed, the fast paths were written for ${SSH2_VERSION_READ}`}
  const problem = ssh2ShapeProblem(client)
  if (problem !== undefined) return {reason: `ssh2's internals are not the shape expected: ${problem}`}
  const raw = client as unknown as {_sock: Socket; _protocol: Proto}
  return {
    internals: {
      socket: raw._sock,
      skipHostKeysProve: () => skipHostKeysProve(raw._protocol),
    },
  }
}

/**
 * sshd announces all its host keys after login (`hostkeys-00@openssh.com`, for OpenSSH's
 * UpdateHostKeys), and ssh2 answers every announcement by asking the server to prove them
 * (`hostkeys-prove-00@openssh.com`: a signature with each host key, checked by the client).
 * vdrep never learns keys that way (known_hosts is the only trust), so that is work for
 * nothing on both sides, and its reply cost a push 40 ms: sshd sets no TCP_NODELAY on a
 * session without a tty, so the receiver's HELLO_OK waited (Nagle) behind that reply until
 * the client's delayed ACK. Here the announcement gets an SSH_MSG_IGNORE instead, which asks
 * for nothing and carries the ACK of what sshd sent (the announcement and its DEBUG lines), so
 * the channel confirmation that follows is not held back either. Where a packet cannot be
 * built (a rekey is running), ssh2's own answer stays.
 */
function skipHostKeysProve(proto: Proto): void {
  const handlers = proto._handlers
  const original = handlers['GLOBAL_REQUEST']!
  const sendIgnore = (): boolean => {
    const w = proto._packetRW.write
    // The cipher object is replaced at each key exchange: look again at every use.
    if (typeof proto._cipher?.encrypt !== 'function') return false
    if (proto._kexinit !== undefined) return false // a rekey is running: packets must queue, ssh2 knows how
    const p = w.allocStart
    const packet = w.alloc(1 + 4)
    packet[p] = SSH_MSG_IGNORE
    packet.writeUInt32BE(0, p + 1) // string data: empty
    proto._cipher.encrypt(w.finalize(packet))
    return true
  }
  handlers['GLOBAL_REQUEST'] = (p, name, wantReply, data) => {
    if (name !== HOSTKEYS_ANNOUNCEMENT) return original(p, name, wantReply, data)
    if (wantReply) return proto.requestFailure()
    if (sendIgnore()) return
    return original(p, name, wantReply, data)
  }
  // The DEBUG lines sshd sends after login (the key's options) can come in a segment of their
  // own, after the announcement's IGNORE went out: acknowledge them the same way, or the
  // channel confirmation waits behind them.
  const debug = handlers['DEBUG']
  handlers['DEBUG'] = (...args) => {
    sendIgnore()
    if (debug !== undefined) debug(...args)
  }
}
