// Every error code vdrep can report, with the exit code it means and one line saying what it
// is. VdrepError and its subclasses take `code: ErrorCode`, so a typo or an unregistered code
// fails to compile; exitCodeOf() and the client's reading of a peer's ERROR both look the exit
// code up here, so no other place decides one. doc/protocol.md ("Error codes") copies this
// table; test/core/errors/registry.test.ts keeps the two identical.
//
// `clientSide`: raised only on the host that runs the client (ssh, host keys, hooks, the
// client's own reading of the stream). A replica host that reports one is not believed: it
// maps to REMOTE_ERROR (exit 1), so a hostile receiver cannot pick, say, the host-key exit code.
import {ExitCode, type ExitCodeValue} from './exit-codes.js'

export interface ErrorCodeInfo {
  readonly exit: ExitCodeValue
  readonly meaning: string
  readonly clientSide?: true
}

export const ERROR_CODES = {
  ATTEMPT_INTERRUPTED: {
    exit: ExitCode.FAILURE,
    meaning: 'the last push or full sync started and never recorded its outcome: its process was killed or the host went down (status only)',
    clientSide: true,
  },
  BAD_ACTIVITY_LOG: {
    exit: ExitCode.USAGE,
    meaning: 'the activity log settings are out of range (1..65535 extents of a power of two from the block size to 1 GiB)',
  },
  BAD_ARGUMENT: {exit: ExitCode.USAGE, meaning: 'a native call got an argument out of range'},
  BAD_BLOCK_SIZE: {exit: ExitCode.USAGE, meaning: 'the block size is not a power of two between 4 KiB and 4 MiB'},
  BAD_CIPHER: {exit: ExitCode.USAGE, meaning: 'the ssh settings name a cipher or algorithm the server or ssh2 does not accept', clientSide: true},
  BAD_COMPRESS: {exit: ExitCode.USAGE, meaning: "--compress or the compress setting is neither 'auto', 'none' nor a level 1..19"},
  BAD_DISK_SIZE: {exit: ExitCode.FAILURE, meaning: 'the hello gives a disk size the receiver cannot take'},
  BAD_DURATION: {exit: ExitCode.USAGE, meaning: 'a duration flag or setting cannot be parsed'},
  BAD_FLAGS: {exit: ExitCode.FAILURE, meaning: 'the hello sets flags this receiver does not know'},
  BAD_GROUP_NAME: {exit: ExitCode.USAGE, meaning: 'a consistency group name is not 1..64 letters, digits, dots, underscores or dashes'},
  BAD_HASH: {exit: ExitCode.USAGE, meaning: 'an unknown hash algorithm, or an unusable hash key'},
  BAD_POINT_SPEC: {exit: ExitCode.USAGE, meaning: "--at names no point: it is neither a sequence, 'latest' nor a time"},
  BAD_PORT: {exit: ExitCode.USAGE, meaning: 'a port number out of range'},
  BAD_RPO: {exit: ExitCode.USAGE, meaning: 'the RPO cannot be parsed or is out of range'},
  BAD_SIZE: {exit: ExitCode.USAGE, meaning: 'a size flag or setting cannot be parsed'},
  BAD_TARGET: {exit: ExitCode.USAGE, meaning: 'the target is neither a local path nor [user@]host[:port]:/path'},
  BLOCK_BAD_HASH: {exit: ExitCode.FAILURE, meaning: "a block's data does not match the hash sent with it"},
  BLOCK_BAD_LENGTH: {exit: ExitCode.FAILURE, meaning: "a block's data has the wrong length"},
  BLOCK_BEHIND_CHECKPOINT: {exit: ExitCode.FAILURE, meaning: 'a block arrived for a range already checkpointed'},
  BLOCK_NOT_SCANNED: {exit: ExitCode.FAILURE, meaning: 'a block arrived for a range the receiver has not yet scanned'},
  BLOCK_OUT_OF_RANGE: {exit: ExitCode.FAILURE, meaning: 'a block number past the end of the disk'},
  BUNDLE_DIGEST: {exit: ExitCode.FAILURE, meaning: "the bundle's digest does not match its blocks"},
  BUNDLE_INCOMPLETE: {exit: ExitCode.FAILURE, meaning: 'the bundle ended before all its blocks arrived'},
  BUNDLE_TOO_LARGE: {exit: ExitCode.FAILURE, meaning: 'the bundle announces more blocks than the disk has'},
  CHECKPOINT_OUT_OF_RANGE: {exit: ExitCode.FAILURE, meaning: 'a checkpoint past the end of the disk or behind the last one'},
  CHECK_FAILED: {exit: ExitCode.FAILURE, meaning: 'vdrep check: at least one check failed (each line says what to fix)', clientSide: true},
  CONFIG_INVALID: {
    exit: ExitCode.USAGE,
    meaning: 'the config file (vdrep.conf) cannot be read or is not valid: the message names the file and line; nothing was changed',
    clientSide: true,
  },
  CONFIG_MISSING: {exit: ExitCode.USAGE, meaning: 'the config file named (--config, VDREP_CONFIG) does not exist', clientSide: true},
  CONFIG_NO_DISKS: {exit: ExitCode.USAGE, meaning: '--all: no config file lists any disk', clientSide: true},
  CONFIG_TARGET_DIFFERS: {
    exit: ExitCode.USAGE,
    meaning: 'the config file names another replica for a disk than its .psf: not applied silently (vdrep config DISK target ..., then a full sync)',
    clientSide: true,
  },
  COMPRESSED_RUN_BAD: {exit: ExitCode.FAILURE, meaning: 'a compressed run of blocks does not decompress to exactly the length it declares'},
  COMPRESS_WORKER: {exit: ExitCode.FAILURE, meaning: 'a compression worker thread failed (the sync stops; nothing unproven is kept)', clientSide: true},
  CONTROL_BAD_JSON: {exit: ExitCode.FAILURE, meaning: 'a control message whose JSON does not parse'},
  CONTROL_BAD_KIND: {exit: ExitCode.FAILURE, meaning: 'a control message of an unknown kind'},
  CONTROL_BAD_LENGTH: {exit: ExitCode.FAILURE, meaning: 'a control message length over its cap'},
  CONTROL_BAD_MAGIC: {exit: ExitCode.FAILURE, meaning: 'a control message without the control magic'},
  CONTROL_BAD_RANGE: {exit: ExitCode.USAGE, meaning: 'a tracker control request names blocks outside the disk'},
  CONTROL_BAD_REPLY: {exit: ExitCode.FAILURE, meaning: "the tracker's control socket answered something malformed", clientSide: true},
  CONTROL_BAD_REQUEST: {exit: ExitCode.FAILURE, meaning: 'a control request with a missing or malformed field'},
  CONTROL_BAD_RESERVED: {exit: ExitCode.FAILURE, meaning: 'a control message header with reserved bits set'},
  CONTROL_BAD_SIZE: {exit: ExitCode.USAGE, meaning: 'a record transition for a disk size other than the one the tracker records'},
  CONTROL_DENIED: {exit: ExitCode.USAGE, meaning: "the tracker's control socket refused a peer that is not its user"},
  CONTROL_LISTEN: {exit: ExitCode.USAGE, meaning: 'the tracker cannot listen on its control socket'},
  CONTROL_NOT_FROZEN: {exit: ExitCode.USAGE, meaning: 'a control request needs a frozen set and none is held'},
  CONTROL_NOT_OWNER: {exit: ExitCode.USAGE, meaning: 'a control request for a frozen set another client holds'},
  CONTROL_NO_FREEZE: {exit: ExitCode.USAGE, meaning: 'the tracker has no frozen set to complete'},
  CONTROL_NO_PRESERVE: {exit: ExitCode.USAGE, meaning: 'the tracker cannot preserve old contents for this freeze'},
  CONTROL_PATH: {exit: ExitCode.USAGE, meaning: 'the control socket path is unusable (too long, not a socket)'},
  CONTROL_TRUNCATED: {exit: ExitCode.FAILURE, meaning: 'the control socket closed inside a message'},
  CONTROL_UNKNOWN_OP: {exit: ExitCode.FAILURE, meaning: 'a control request for an unknown operation'},
  CONTROL_VERSION: {exit: ExitCode.FAILURE, meaning: 'a control message of another protocol version'},
  DEVICE_IN_USE: {
    exit: ExitCode.USAGE,
    meaning: 'a block device (a tracked disk or a replica) is mounted or held exclusively by another program: nothing was written',
  },
  DISK_EMPTY: {exit: ExitCode.USAGE, meaning: 'the disk has size 0'},
  DISK_IO: {exit: ExitCode.FAILURE, meaning: 'a read or write on this host failed (the message names the file and offset)'},
  DISK_IS_DIRECTORY: {exit: ExitCode.USAGE, meaning: 'the disk named is a directory'},
  DISK_MISSING: {exit: ExitCode.USAGE, meaning: 'no such disk'},
  DISK_NOT_A_DISK: {exit: ExitCode.USAGE, meaning: 'the disk named is neither a regular file nor a block device'},
  DISK_NOT_RAW: {exit: ExitCode.USAGE, meaning: 'the disk is an image format vdrep does not replicate (qcow2, sparse VMDK, ...)'},
  DISK_OPEN: {exit: ExitCode.USAGE, meaning: 'the disk cannot be opened'},
  DISK_PATH_LINE_BREAK: {exit: ExitCode.USAGE, meaning: 'the disk path holds a line break, which no crontab line can hold', clientSide: true},
  DISK_RESIZED_WHILE_TRACKED: {exit: ExitCode.USAGE, meaning: 'the disk changed size while a tracker runs on it'},
  DISK_SIZE_MISMATCH: {exit: ExitCode.FAILURE, meaning: "the bundle's disk size does not match the replica's"},
  DISK_TYPE: {exit: ExitCode.USAGE, meaning: "the disk's file type is not one the tracker can serve"},
  DISK_UNREADABLE: {exit: ExitCode.USAGE, meaning: 'the disk cannot be read (permissions)'},
  DIVERGENT_UNKNOWN: {
    exit: ExitCode.USAGE,
    meaning:
      "reprotect: the old primary's record cannot be trusted, so its own writes cannot be told from the rest and kept as a restore point: nothing was written (--discard-divergent)",
  },
  DONE_MISMATCH: {exit: ExitCode.FAILURE, meaning: 'the end of a full sync does not match what the receiver saw'},
  EXPORT_TARGET_EXISTS: {exit: ExitCode.USAGE, meaning: 'vdrep export --to names a file that exists (never overwritten)'},
  FAILOVER_AT_RESIZED: {exit: ExitCode.USAGE, meaning: 'failover --at: the point has another disk size than the replica now: refused, nothing was written'},
  FAILOVER_INCOMPLETE: {
    exit: ExitCode.USAGE,
    meaning: 'failover: the replica is incomplete (a full sync did not finish) or diverged: it is no consistent point (--force for a diverged one)',
  },
  FAILOVER_NOT_FINAL: {
    exit: ExitCode.USAGE,
    meaning: 'failover --planned: the last commit was not a final push (vdrep push --final on the primary first), nothing was changed',
  },
  FAILOVER_NOT_REPLICA: {exit: ExitCode.USAGE, meaning: 'failover: the file has no replica state: it is not a replica vdrep wrote'},
  FAILOVER_UNPLANNED: {
    exit: ExitCode.USAGE,
    meaning: 'failover: the last commit was not a final push; writes since it may be lost: --planned after vdrep push --final, or --force',
  },
  FINAL_TRACKER_RUNNING: {
    exit: ExitCode.USAGE,
    meaning: 'push --final: a tracker runs for the disk (its VM may still write): stop the VM and the tracker first',
    clientSide: true,
  },
  FRAME_BAD_FLAGS: {exit: ExitCode.FAILURE, meaning: 'a frame header sets unknown flags'},
  FRAME_BAD_MAGIC: {exit: ExitCode.FAILURE, meaning: 'a frame does not start with the protocol magic'},
  FRAME_MALFORMED: {exit: ExitCode.FAILURE, meaning: 'a frame body does not decode'},
  FRAME_TOO_LARGE: {exit: ExitCode.FAILURE, meaning: 'a frame length is over the cap for its type'},
  FRAME_TRUNCATED: {exit: ExitCode.FAILURE, meaning: 'the stream ended inside a frame'},
  FRAME_UNEXPECTED: {exit: ExitCode.FAILURE, meaning: 'a known frame type where the conversation does not allow it'},
  FRAME_UNKNOWN_TYPE: {exit: ExitCode.FAILURE, meaning: 'an unknown frame type'},
  FREEZE_BUSY: {exit: ExitCode.USAGE, meaning: "another push or full sync holds the tracker's frozen set"},
  FREEZE_CANCELLED: {exit: ExitCode.USAGE, meaning: 'the tracker cancelled the frozen set (it is stopping)'},
  FULL_SYNC_NEEDED: {exit: ExitCode.FULL_SYNC_NEEDED, meaning: 'the change record cannot be trusted and a full sync is needed'},
  GROUP_CUT_EXPIRED: {
    exit: ExitCode.FAILURE,
    meaning: "a member tracker's hold of its writes ran out before every member was frozen: the group's point in time is void",
    clientSide: true,
  },
  GROUP_CUT_FAILED: {exit: ExitCode.TRANSPORT, meaning: "a member's tracker did not take the group's cut in time; the others were resumed", clientSide: true},
  GROUP_MEMBERS_SPLIT: {exit: ExitCode.USAGE, meaning: 'the members of a group push replicate to different receivers, which cannot commit them as one unit'},
  GROUP_MEMBER_FULL_SYNC: {
    exit: ExitCode.FULL_SYNC_NEEDED,
    meaning: 'a member of a group push needs a full sync first (a group point is a delta of every member)',
    clientSide: true,
  },
  GROUP_MEMBER_NOT_HELD: {exit: ExitCode.FAILURE, meaning: 'a group commit names a member whose bundle is not journaled and held on this receiver'},
  GROUP_MEMBER_OTHER_GROUP: {exit: ExitCode.USAGE, meaning: 'a disk given to push --group belongs to another group (its .psf says so)'},
  GROUP_MEMBER_REPLACED: {
    exit: ExitCode.USAGE,
    meaning: 'failover --group: a member replica belongs to another source than at the group point (a new replica since): nothing was changed',
  },
  GROUP_NOT_COMMITTED: {exit: ExitCode.FAILURE, meaning: 'a held member bundle was told to apply, but no group record names it'},
  GROUP_NO_POINT: {exit: ExitCode.USAGE, meaning: 'failover --group: the group has no such point, or no point every member still keeps: nothing was changed'},
  GROUP_NO_TRACKER: {exit: ExitCode.USAGE, meaning: 'a member of a group push has no running tracker, so no point in time can be taken across the group'},
  GROUP_RECORD_CORRUPT: {exit: ExitCode.FAILURE, meaning: 'a consistency group record on the replica host fails its checks'},
  HASH_UNAVAILABLE: {exit: ExitCode.USAGE, meaning: 'the hash algorithm is not available in this Node build'},
  HASH_WORKER: {exit: ExitCode.FAILURE, meaning: 'a hash worker thread failed'},
  HOOK_FAILED: {exit: ExitCode.FAILURE, meaning: 'a pre- or post-hook exited non-zero', clientSide: true},
  HOST_KEY_CHANGED: {exit: ExitCode.HOST_KEY, meaning: "the replica host's key differs from the one in known_hosts", clientSide: true},
  HOST_KEY_CHECK_FAILED: {exit: ExitCode.HOST_KEY, meaning: "the replica host's key could not be checked", clientSide: true},
  HOST_KEY_REVOKED: {exit: ExitCode.HOST_KEY, meaning: "the replica host's key is marked @revoked in known_hosts", clientSide: true},
  HOST_KEY_UNKNOWN: {exit: ExitCode.HOST_KEY, meaning: "the replica host's key is not in known_hosts", clientSide: true},
  IDENTITY_UNREADABLE: {exit: ExitCode.USAGE, meaning: 'an identity file named cannot be read', clientSide: true},
  IDENTITY_UNUSABLE: {exit: ExitCode.USAGE, meaning: 'an identity file named holds no usable private key', clientSide: true},
  IDLE_TIMEOUT: {exit: ExitCode.TRANSPORT, meaning: 'the peer sent nothing for longer than the idle timeout'},
  INTERNAL: {exit: ExitCode.FAILURE, meaning: 'an unexpected failure (a bug): the message says what'},
  JOURNAL_CORRUPT: {exit: ExitCode.USAGE, meaning: "the receiver's delta journal is damaged"},
  KNOWN_HOSTS_UNREADABLE: {exit: ExitCode.HOST_KEY, meaning: 'the known_hosts file cannot be read', clientSide: true},
  KNOWN_HOSTS_UNWRITABLE: {exit: ExitCode.HOST_KEY, meaning: 'a new host key cannot be recorded in known_hosts', clientSide: true},
  LISTEN_FAILED: {exit: ExitCode.FAILURE, meaning: 'the receiver cannot listen on its port'},
  LISTEN_NOT_LOOPBACK: {exit: ExitCode.USAGE, meaning: 'the receiver was asked to listen on a non-loopback address'},
  LOCAL_FULL: {exit: ExitCode.FAILURE, meaning: 'a file on this host (not the replica) could not be written: no space left', clientSide: true},
  LOCKED: {exit: ExitCode.LOCKED, meaning: 'another vdrep process holds the lock on this disk or replica'},
  LOCK_UNAVAILABLE: {exit: ExitCode.FAILURE, meaning: 'no lock that excludes other processes can be taken on this machine (never pretended)'},
  LOG_FILE: {exit: ExitCode.USAGE, meaning: "the receiver's log file cannot be opened"},
  MODE_UNSUPPORTED: {exit: ExitCode.USAGE, meaning: 'the hello asks for an unknown sync mode'},
  NBD_BAD_EXPORT_NAME: {exit: ExitCode.FAILURE, meaning: 'an NBD client asked for an export name that is not valid'},
  NBD_BAD_MAGIC: {exit: ExitCode.FAILURE, meaning: 'an NBD message does not start with its magic'},
  NBD_CLIENT_FLAGS: {exit: ExitCode.FAILURE, meaning: 'an NBD client sent handshake flags the server does not support'},
  NBD_CLOSED: {exit: ExitCode.USAGE, meaning: 'the NBD server is closed'},
  NBD_EOF: {exit: ExitCode.FAILURE, meaning: 'the peer closed the connection'},
  NBD_LISTEN: {exit: ExitCode.USAGE, meaning: 'the tracker cannot listen for NBD clients'},
  NBD_MAX_PAYLOAD: {exit: ExitCode.USAGE, meaning: 'the NBD maximum payload setting is out of range'},
  NBD_NOT_LOOPBACK: {exit: ExitCode.USAGE, meaning: 'the NBD export was asked to listen on a non-loopback address'},
  NBD_OPTION_TOO_LONG: {exit: ExitCode.FAILURE, meaning: 'an NBD option is longer than the server accepts'},
  NBD_SHUTDOWN: {exit: ExitCode.FAILURE, meaning: 'the NBD server is shutting down'},
  NBD_SOCKET: {exit: ExitCode.FAILURE, meaning: "the peer's socket failed"},
  NBD_SOCKET_IN_USE: {exit: ExitCode.USAGE, meaning: 'something already listens on the NBD socket path'},
  NBD_SOCKET_PATH: {exit: ExitCode.USAGE, meaning: 'the NBD socket path is unusable'},
  NBD_TOO_MANY_OPTIONS: {exit: ExitCode.FAILURE, meaning: 'an NBD client sent too many handshake options'},
  NBD_UNKNOWN_EXPORT: {exit: ExitCode.FAILURE, meaning: 'an NBD client asked for an export that does not exist'},
  NBD_WRITE_TOO_LARGE: {exit: ExitCode.FAILURE, meaning: 'an NBD write is larger than the maximum payload'},
  NOT_BLOCK_DEVICE: {exit: ExitCode.USAGE, meaning: 'a block-device call on something that is not one'},
  NO_ROOT: {exit: ExitCode.USAGE, meaning: 'vdrep serve was started without --root'},
  PATH_OUTSIDE_ROOT: {exit: ExitCode.USAGE, meaning: "the replica path is outside the receiver's root, or reserved"},
  PEER_REFUSED: {exit: ExitCode.TRANSPORT, meaning: 'the receiver refused a connection from another user'},
  PEER_TIMEOUT: {
    exit: ExitCode.TIMEOUT,
    meaning: 'the receiver sent nothing, not even a keepalive, within --timeout (stopped, hung or cut off): the session was abandoned',
    clientSide: true,
  },
  POINT_CORRUPT: {exit: ExitCode.USAGE, meaning: 'a restore point file (<replica>.vdrep-points/) is damaged or not a vdrep file: refused, never trusted'},
  POINT_GONE: {exit: ExitCode.FAILURE, meaning: 'the restore point asked for is not kept (dropped by retention, or never made), or was dropped while open'},
  POINT_UNTRUSTED: {exit: ExitCode.USAGE, meaning: "the replica's restore points cannot be read: the replica is incomplete, diverged or in doubt"},
  PORT_IN_USE: {exit: ExitCode.FAILURE, meaning: "something already listens on the receiver's port"},
  PSF_CORRUPT: {exit: ExitCode.USAGE, meaning: 'the .psf header or settings are damaged'},
  PSF_EXISTS: {exit: ExitCode.USAGE, meaning: 'vdrep init found a .psf already'},
  PSF_FOREIGN: {exit: ExitCode.USAGE, meaning: 'the .psf belongs to another disk or is not a vdrep file'},
  PSF_MISSING: {exit: ExitCode.USAGE, meaning: 'the disk has no .psf (run vdrep init)'},
  PSF_NOT_THIS_DISK: {
    exit: ExitCode.USAGE,
    meaning:
      'the .psf records another disk (a cloned or copied disk, a .psf copied from another disk, a disk file replaced under it): refused, nothing is sent (vdrep init for a copy)',
  },
  PSF_SETTINGS_TOO_LARGE: {exit: ExitCode.USAGE, meaning: 'the replication settings do not fit in the .psf header'},
  PSF_UNBOUND: {
    exit: ExitCode.USAGE,
    meaning: 'a format-1 .psf (no disk identity) that cannot be shown to belong to the disk in front of it: refused (vdrep init --force)',
  },
  PSF_UNREADABLE: {exit: ExitCode.USAGE, meaning: 'the .psf cannot be read'},
  PSF_VERSION: {exit: ExitCode.USAGE, meaning: 'the .psf was written by an unknown format version'},
  PSF_WRITE_FAILED: {exit: ExitCode.USAGE, meaning: 'the .psf could not be written'},
  RECEIVER_BUSY: {exit: ExitCode.TRANSPORT, meaning: 'the receiver already serves as many connections as it allows for this user'},
  RECEIVER_CLOSED: {exit: ExitCode.TRANSPORT, meaning: 'the replica host closed the connection', clientSide: true},
  RECEIVER_INCONSISTENT: {
    exit: ExitCode.FAILURE,
    meaning: "the replica host's answer contradicts its own block statuses (verify, fullsync --dry-run): not believed",
    clientSide: true,
  },
  RECEIVER_NOT_STARTED: {exit: ExitCode.TRANSPORT, meaning: 'no receiver answers on the replica host and none could be started', clientSide: true},
  RECEIVER_STOPPING: {exit: ExitCode.TRANSPORT, meaning: 'the receiver on the replica host is shutting down'},
  REMOTE_ERROR: {exit: ExitCode.FAILURE, meaning: 'the peer reported an error code this vdrep does not know', clientSide: true},
  REPLICA_DEVICE_TOO_SMALL: {exit: ExitCode.USAGE, meaning: 'the replica is a block device smaller than the source disk: nothing was written'},
  REPLICA_DIVERGED: {
    exit: ExitCode.REPLICA_DIVERGED,
    meaning:
      'the replica moved on without vdrep (written since its last commit, or held open by another program): it is not overwritten without --discard-replica-changes',
  },
  REPLICA_FOREIGN: {
    exit: ExitCode.REPLICA_FOREIGN,
    meaning: 'the replica belongs to another source (another replica id): it is not overwritten without --take-over-replica',
  },
  REPLICA_FULL: {exit: ExitCode.REPLICA_FULL, meaning: 'the replica filesystem has no room for the data'},
  REPLICA_IS_RECEIVER_FILE: {exit: ExitCode.USAGE, meaning: "the replica path names one of the receiver's own files (its log or config)"},
  REPLICA_JOURNAL_PENDING: {
    exit: ExitCode.FAILURE,
    meaning: "the replica has an interrupted push's journal not replayed yet (verify, fullsync --dry-run): the next push replays it",
  },
  REPLICA_LARGER: {exit: ExitCode.USAGE, meaning: 'the replica is larger than the source (push --truncate-replica to cut it)'},
  REPLICA_PROMOTED: {
    exit: ExitCode.REPLICA_PROMOTED,
    meaning: 'the replica was promoted by a failover: nothing from its old source is written to it, whatever the flags (vdrep reprotect fails back)',
  },
  REPLICA_STATE_CORRUPT: {exit: ExitCode.USAGE, meaning: "the replica's state file is damaged"},
  REPLICA_STATE_FOREIGN: {exit: ExitCode.USAGE, meaning: "the replica's state file belongs to another replica"},
  REPROTECT_NOT_OLD_SOURCE: {
    exit: ExitCode.USAGE,
    meaning: "reprotect: the disk's record is not the promoted replica's old source (another replica id or commit chain)",
  },
  REPROTECT_NOT_PROMOTED: {
    exit: ExitCode.USAGE,
    meaning: 'reprotect: the disk is not a promoted replica with its own record (run vdrep failover first), or its record moved on',
    clientSide: true,
  },
  REPROTECT_SIZE: {exit: ExitCode.USAGE, meaning: 'reprotect: the old primary disk and the promoted disk differ in size: nothing was written'},
  RETENTION_BAD: {exit: ExitCode.USAGE, meaning: 'a restore-point retention policy cannot be parsed'},
  ROOT_MISSING: {exit: ExitCode.USAGE, meaning: "the receiver's root does not exist"},
  RPO_VIOLATED: {exit: ExitCode.RPO_VIOLATED, meaning: 'status --check: a disk is past its RPO', clientSide: true},
  SAME_PORT: {exit: ExitCode.USAGE, meaning: 'the full sync and delta ports must differ', clientSide: true},
  SD_NOTIFY_FAILED: {
    exit: ExitCode.FAILURE,
    meaning: 'under systemd (Type=notify): the readiness notification could not be sent to $NOTIFY_SOCKET',
    clientSide: true,
  },
  SEQUENCE_MISMATCH: {exit: ExitCode.FAILURE, meaning: 'a sequence number does not follow the last one applied'},
  SERVE_CONFIG: {exit: ExitCode.USAGE, meaning: "the receiver's configuration is unusable"},
  SERVE_START_FAILED: {exit: ExitCode.FAILURE, meaning: 'vdrep serve --daemon: the receiver did not start', clientSide: true},
  SETTING_BAD: {exit: ExitCode.USAGE, meaning: 'vdrep config or the config file: a setting value that is not valid for its key', clientSide: true},
  SETTING_NEEDS_INIT: {
    exit: ExitCode.USAGE,
    meaning: 'vdrep config: the block size, hash or activity log shape the change record and change only with vdrep init --force',
    clientSide: true,
  },
  SETTING_UNKNOWN: {exit: ExitCode.USAGE, meaning: 'vdrep config or the config file: no setting of that name', clientSide: true},
  SOURCE_SHRANK: {exit: ExitCode.USAGE, meaning: 'the source disk is smaller than the replica'},
  SSH_AUTH: {exit: ExitCode.TRANSPORT, meaning: 'ssh login failed', clientSide: true},
  SSH_CHANNEL: {exit: ExitCode.TRANSPORT, meaning: 'an ssh channel failed', clientSide: true},
  SSH_CHANNEL_CLOSED: {exit: ExitCode.TRANSPORT, meaning: 'an ssh channel was closed', clientSide: true},
  SSH_CLOSED: {exit: ExitCode.TRANSPORT, meaning: 'the ssh connection is closed', clientSide: true},
  SSH_CONFIG_BAD: {exit: ExitCode.USAGE, meaning: 'the ssh config file has a setting vdrep cannot use', clientSide: true},
  SSH_CONFIG_UNREADABLE: {exit: ExitCode.USAGE, meaning: 'the ssh config file cannot be read', clientSide: true},
  SSH_CONNECT: {exit: ExitCode.TRANSPORT, meaning: 'cannot connect to the replica host over ssh', clientSide: true},
  SSH_CONNECTION_LOST: {exit: ExitCode.TRANSPORT, meaning: 'the ssh connection was lost', clientSide: true},
  SSH_EXEC: {exit: ExitCode.TRANSPORT, meaning: 'a command run over ssh failed', clientSide: true},
  SSH_NO_IDENTITY: {exit: ExitCode.TRANSPORT, meaning: 'no ssh key or agent to log in with', clientSide: true},
  SSH_PROGRAM_MISSING: {exit: ExitCode.USAGE, meaning: 'the OpenSSH carrier was chosen and the ssh program cannot be run', clientSide: true},
  SSH_TIMEOUT: {exit: ExitCode.TIMEOUT, meaning: 'no ssh answer in time (connect, handshake and login within --timeout)', clientSide: true},
  STATUS_CHECK_ERROR: {exit: ExitCode.FAILURE, meaning: 'status --check: the status of a disk could not be read', clientSide: true},
  STATUS_OUT_OF_ORDER: {exit: ExitCode.FAILURE, meaning: "the receiver's block statuses arrived out of order", clientSide: true},
  STREAM_CLOSED: {exit: ExitCode.TRANSPORT, meaning: 'the stream was closed before a frame was sent'},
  STREAM_FAILED: {exit: ExitCode.TRANSPORT, meaning: 'writing to the stream failed'},
  SYSTEM_ERROR: {exit: ExitCode.FAILURE, meaning: 'a system call failed (the message names the errno)'},
  TARGET_DIR_MISSING: {exit: ExitCode.USAGE, meaning: "the local target's directory does not exist"},
  TARGET_IS_SOURCE: {exit: ExitCode.USAGE, meaning: 'the target is the disk itself or its .psf'},
  TEST_NOT_RUNNING: {exit: ExitCode.FAILURE, meaning: 'vdrep test stop: no test of this replica is running'},
  TEST_STOP_TIMEOUT: {exit: ExitCode.FAILURE, meaning: 'vdrep test stop: the test process did not end in time'},
  TRACKER_CONNECT: {exit: ExitCode.TRANSPORT, meaning: "cannot connect to the tracker's control socket", clientSide: true},
  TRACKER_ERROR: {exit: ExitCode.FAILURE, meaning: 'the tracker reported an error without a code', clientSide: true},
  TRACKER_GONE: {exit: ExitCode.TRANSPORT, meaning: 'the tracker went away during a request', clientSide: true},
  TRACKER_NOT_RUNNING: {exit: ExitCode.FAILURE, meaning: 'no tracker runs for this disk', clientSide: true},
  TRACKER_TIMEOUT: {exit: ExitCode.TRANSPORT, meaning: 'the tracker did not answer in time', clientSide: true},
  TRACK_MODE: {exit: ExitCode.USAGE, meaning: 'vdrep track needs exactly one of --nbd and --scan', clientSide: true},
  TUNNEL_FAILED: {exit: ExitCode.TRANSPORT, meaning: "the ssh tunnel to the receiver's port failed", clientSide: true},
  TUNNEL_REFUSED: {exit: ExitCode.TRANSPORT, meaning: "nothing listens on the receiver's port on the replica host", clientSide: true},
  UNEXPECTED_EOF: {exit: ExitCode.FAILURE, meaning: 'the stream ended inside a conversation'},
  USAGE: {exit: ExitCode.USAGE, meaning: 'an unknown flag, a missing argument or a bad flag value', clientSide: true},
  VERIFY_FAILED: {
    exit: ExitCode.VERIFY_FAILED,
    meaning: 'the replica could not be proved equal to the source, or verify found differences no pending change explains',
  },
  VERIFY_PENDING: {
    exit: ExitCode.FAILURE,
    meaning: 'a local check of the disk against the block hash index is pending or running: the change record is trusted only after it',
    clientSide: true,
  },
  VERSION_MISMATCH: {exit: ExitCode.FAILURE, meaning: 'the peers speak different protocol versions'},
  WRONG_PORT: {exit: ExitCode.FAILURE, meaning: 'the hello asks for a mode the port does not serve'},
  ZERO_RUN_EMPTY: {exit: ExitCode.FAILURE, meaning: 'a zero run of length 0'},
} as const satisfies Record<string, ErrorCodeInfo>

export type ErrorCode = keyof typeof ERROR_CODES

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code)
}

export function errorCodeInfo(code: ErrorCode): ErrorCodeInfo {
  return ERROR_CODES[code]
}

/** The exit code an error code means. */
export function exitCodeOfCode(code: ErrorCode): ExitCodeValue {
  return (ERROR_CODES[code] as ErrorCodeInfo).exit
}

/** Where a peer's error came from: the replica host's receiver, or this host's tracker. */
export type PeerKind = 'replica host' | 'tracker'

/**
 * The code a peer's ERROR is read as: a registered one it may raise, else REMOTE_ERROR. The
 * exit code the peer put beside it is never used (a hostile peer cannot pick ours).
 */
export function codeFromPeer(code: string, from: PeerKind): ErrorCode {
  if (!isErrorCode(code)) return 'REMOTE_ERROR'
  if (from === 'replica host' && (ERROR_CODES[code] as ErrorCodeInfo).clientSide) return 'REMOTE_ERROR'
  return code
}
