// Every failure vdrep can report, as typed classes with a stable code, a user-facing
// message, a hint and an exit code. The exit-code table below is the one documented in
// README.md and man/vdrep.1; keep the three in step.

export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  LOCKED: 3,
  FULL_SYNC_NEEDED: 4,
  VERIFY_FAILED: 5,
  RPO_VIOLATED: 6,
  TRANSPORT: 7,
  HOST_KEY: 8,
  REPLICA_FULL: 9,
  INTERRUPTED: 130,
} as const

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

/** The table printed in docs: code, name, meaning. */
export const EXIT_CODE_TABLE: ReadonlyArray<[number, string, string]> = [
  [0, 'OK', 'success'],
  [1, 'FAILURE', 'an unexpected failure (I/O error, receiver error)'],
  [2, 'USAGE', 'usage or bad input: unknown flag, missing or unsuitable disk, corrupt or foreign .psf, bad target'],
  [3, 'LOCKED', 'another vdrep process holds the lock on this disk or replica'],
  [4, 'FULL_SYNC_NEEDED', 'the change record cannot be trusted and a full sync is needed (push --no-fallback, track)'],
  [5, 'VERIFY_FAILED', 'the replica could not be proved equal to the source; it stays marked incomplete'],
  [6, 'RPO_VIOLATED', 'status --check: a disk is past its RPO'],
  [7, 'TRANSPORT', 'the connection to the replica host failed or was cut'],
  [8, 'HOST_KEY', 'the replica host key is unknown or changed'],
  [9, 'REPLICA_FULL', 'the replica filesystem has no room for the data'],
  [130, 'INTERRUPTED', 'interrupted by a signal'],
]

export interface VdrepErrorOptions {
  hint?: string
  cause?: unknown
}

export class VdrepError extends Error {
  readonly code: string
  readonly exitCode: number
  readonly hint?: string

  constructor(code: string, exitCode: number, message: string, opts: VdrepErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : {cause: opts.cause})
    this.name = new.target.name
    this.code = code
    this.exitCode = exitCode
    this.hint = opts.hint
  }

  toJSON(): Record<string, unknown> {
    return {error: this.code, message: this.message, hint: this.hint, exitCode: this.exitCode}
  }
}

/** Bad flags, bad arguments, unsuitable disks, bad targets: nothing was written. */
export class UsageError extends VdrepError {
  constructor(code: string, message: string, opts?: VdrepErrorOptions) {
    super(code, ExitCode.USAGE, message, opts)
  }
}

/** A state file (.psf, receiver state, journal) that cannot be used. */
export class StateError extends VdrepError {
  constructor(code: string, message: string, opts?: VdrepErrorOptions) {
    super(code, ExitCode.USAGE, message, opts)
  }
}

/** A frame or stream that breaks the wire protocol. */
export class ProtocolError extends VdrepError {
  constructor(code: string, message: string, opts?: VdrepErrorOptions) {
    super(code, ExitCode.FAILURE, message, opts)
  }
}

/** The peer reported an error of its own; carries its code and exit code across the wire. */
export class RemoteError extends VdrepError {
  constructor(code: string, exitCode: number, message: string, opts?: VdrepErrorOptions) {
    super(code, exitCode, message, opts)
  }
}

export class TransportError extends VdrepError {
  constructor(code: string, message: string, opts?: VdrepErrorOptions) {
    super(code, ExitCode.TRANSPORT, message, opts)
  }
}

export class HostKeyError extends VdrepError {
  constructor(code: string, message: string, opts?: VdrepErrorOptions) {
    super(code, ExitCode.HOST_KEY, message, opts)
  }
}

export class LockError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('LOCKED', ExitCode.LOCKED, message, opts)
  }
}

export class VerifyError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('VERIFY_FAILED', ExitCode.VERIFY_FAILED, message, opts)
  }
}

export class FullSyncNeededError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('FULL_SYNC_NEEDED', ExitCode.FULL_SYNC_NEEDED, message, opts)
  }
}

export class ReplicaFullError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('REPLICA_FULL', ExitCode.REPLICA_FULL, message, opts)
  }
}

/** Wrap an I/O failure so the message names what was being done and where. */
export class DiskIoError extends VdrepError {
  constructor(message: string, opts?: VdrepErrorOptions) {
    super('DISK_IO', ExitCode.FAILURE, message, opts)
  }
}

/** The one place that maps any thrown value to an exit code. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof VdrepError) return err.exitCode
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code === 'ENOSPC' || code === 'EDQUOT') return ExitCode.REPLICA_FULL
  return ExitCode.FAILURE
}

/** Turn anything thrown into a VdrepError, keeping the original as the cause. */
export function asVdrepError(err: unknown): VdrepError {
  if (err instanceof VdrepError) return err
  const e = err as NodeJS.ErrnoException
  if (e?.code === 'ENOSPC' || e?.code === 'EDQUOT') {
    return new ReplicaFullError(`no space left on the replica filesystem: ${e.message}`, {cause: err})
  }
  return new VdrepError(e?.code ?? 'INTERNAL', ExitCode.FAILURE, e?.message ?? String(err), {cause: err})
}
