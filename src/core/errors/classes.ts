// The error classes. Each carries a registered code (registry.ts); its exit code is looked up
// there, never chosen by the class or the thrower. The classes name families (usage, state,
// protocol, transport, ...) so that code can test `instanceof` instead of reading a message.
import {ExitCode, type ExitCodeValue} from './exit-codes.js'
import {codeFromPeer, exitCodeOfCode, type ErrorCode, type PeerKind} from './registry.js'

export interface VdrepErrorOptions {
  hint?: string
  cause?: unknown
}

export class VdrepError extends Error {
  readonly code: ErrorCode
  readonly hint?: string

  constructor(code: ErrorCode, message: string, opts: VdrepErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : {cause: opts.cause})
    this.name = new.target.name
    this.code = code
    this.hint = opts.hint
  }

  /** From the registry: the one mapping of codes to exit codes. */
  get exitCode(): ExitCodeValue {
    return exitCodeOfCode(this.code)
  }

  toJSON(): Record<string, unknown> {
    return {error: this.code, message: this.message, hint: this.hint, exitCode: this.exitCode}
  }
}

/** Bad flags, bad arguments, unsuitable disks, bad targets: nothing was written. */
export class UsageError extends VdrepError {}

/** A state file (.psf, receiver state, journal) that cannot be used. */
export class StateError extends VdrepError {}

/** A frame or stream that breaks the wire protocol. */
export class ProtocolError extends VdrepError {}

/**
 * The peer hung up or its socket failed while we read (NBD_EOF, NBD_SOCKET): not a protocol
 * violation to answer, just a peer that is gone. Servers stop quietly on it.
 */
export class PeerGoneError extends ProtocolError {}

/**
 * The peer (the receiver on the replica host, or this host's tracker) reported an error of
 * its own. Its code is read through the registry (codeFromPeer): an unknown one, or one only
 * this host can raise, becomes REMOTE_ERROR; `peerCode` keeps what the peer sent.
 */
export class RemoteError extends VdrepError {
  /** The code and message as the peer sent them. */
  readonly peerCode: string
  readonly peerMessage: string

  constructor(peer: {code: string; message: string; hint?: string}, from: PeerKind) {
    const code = codeFromPeer(peer.code, from)
    // The receiver's messages say where they come from; the tracker is on this host.
    const where = from === 'replica host' ? 'replica host: ' : ''
    const unknown = code === peer.code ? '' : ` (${from} error code ${JSON.stringify(peer.code.slice(0, 64))})`
    super(code, `${where}${peer.message}${unknown}`, {hint: peer.hint || undefined})
    this.peerCode = peer.code
    this.peerMessage = peer.message
  }
}

export class TransportError extends VdrepError {}

export class HostKeyError extends VdrepError {}

export class LockError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('LOCKED', message, opts)
  }
}

export class VerifyError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('VERIFY_FAILED', message, opts)
  }
}

export class FullSyncNeededError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('FULL_SYNC_NEEDED', message, opts)
  }
}

/** Raised by the receiver only: the replica host's filesystem is full (the message names the replica). */
export class ReplicaFullError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('REPLICA_FULL', message, opts)
  }
}

/** Raised by the receiver only: the replica belongs to another source (REPLICA_FOREIGN). */
export class ReplicaForeignError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('REPLICA_FOREIGN', message, opts)
  }
}

/** Raised by the receiver only: the replica moved on without vdrep (REPLICA_DIVERGED). */
export class ReplicaDivergedError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('REPLICA_DIVERGED', message, opts)
  }
}

/** Raised by the receiver only: the replica was promoted by a failover (REPLICA_PROMOTED); no flag lifts it. */
export class ReplicaPromotedError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('REPLICA_PROMOTED', message, opts)
  }
}

/** Wrap an I/O failure so the message names what was being done and where. */
export class DiskIoError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('DISK_IO', message, opts)
  }
}

/** A write on this host found its filesystem full: never "replica full" unless the receiver says so. */
export class LocalFullError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('LOCAL_FULL', message, opts)
  }
}

export {ExitCode}
