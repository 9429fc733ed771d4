// The exit codes vdrep documents: README.md ("## Exit codes") and man/vdrep.1 (EXIT STATUS)
// copy EXIT_CODE_TABLE, and test/core/errors/exit-code-docs.test.ts keeps the three identical.
// Which error gets which code is decided in registry.ts, nowhere else.

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
  REPLICA_FOREIGN: 10,
  REPLICA_DIVERGED: 11,
  REPLICA_PROMOTED: 12,
  TIMEOUT: 13,
  INTERRUPTED: 130,
} as const

export type ExitCodeName = keyof typeof ExitCode
export type ExitCodeValue = (typeof ExitCode)[ExitCodeName]

/** The table printed in docs: exit code, name, meaning. */
export const EXIT_CODE_TABLE: ReadonlyArray<readonly [ExitCodeValue, ExitCodeName, string]> = [
  [0, 'OK', 'success'],
  [1, 'FAILURE', 'an unexpected failure (an I/O error or a full disk on this host, a receiver error)'],
  [2, 'USAGE', 'usage or bad input: unknown flag, missing or unsuitable disk, corrupt or foreign .psf, bad target'],
  [3, 'LOCKED', 'another vdrep process holds the lock on this disk or replica'],
  [4, 'FULL_SYNC_NEEDED', 'the change record cannot be trusted and a full sync is needed (push --no-fallback, track)'],
  [
    5,
    'VERIFY_FAILED',
    'the replica could not be proved equal to the source (a full sync leaves it marked incomplete; verify found blocks that no pending change explains)',
  ],
  [6, 'RPO_VIOLATED', 'status --check: a disk is past its RPO'],
  [7, 'TRANSPORT', 'the connection to the replica host failed or was cut'],
  [8, 'HOST_KEY', 'the replica host key is unknown or changed'],
  [9, 'REPLICA_FULL', 'the replica filesystem has no room for the data'],
  [10, 'REPLICA_FOREIGN', 'the replica belongs to another source; nothing was written (hand it over with --take-over-replica)'],
  [
    11,
    'REPLICA_DIVERGED',
    'the replica was written outside vdrep since its last commit, or is open by another program; nothing was written (resync with --discard-replica-changes)',
  ],
  [
    12,
    'REPLICA_PROMOTED',
    'the replica was promoted by a failover: it is a source now and takes nothing from its old source, whatever the flags (fail back with vdrep reprotect)',
  ],
  [
    13,
    'TIMEOUT',
    'the replica host did not answer within --timeout (login, hello, or any wait for the receiver): the lock was released and a push handed its blocks back',
  ],
  [130, 'INTERRUPTED', 'interrupted by a signal'],
]
