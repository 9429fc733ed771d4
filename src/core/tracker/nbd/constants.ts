// Numbers of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md), fixed newstyle only.
// Every field on the wire is big-endian (network byte order).

// ---- magics ----------------------------------------------------------------------------
/** 'NBDMAGIC': first 8 bytes the server sends. */
export const NBD_INIT_MAGIC = 0x4e42444d41474943n
/** 'IHAVEOPT': second server magic, and the magic of every client option. */
export const NBD_OPTS_MAGIC = 0x49484156454f5054n
/** Magic of every server reply during option haggling. */
export const NBD_REP_MAGIC = 0x3e889045565a9n
export const NBD_REQUEST_MAGIC = 0x25609513
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef

// ---- handshake flags (16 bits, server) and client flags (32 bits) -----------------------
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0
export const NBD_FLAG_NO_ZEROES = 1 << 1
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0
export const NBD_FLAG_C_NO_ZEROES = 1 << 1
export const KNOWN_CLIENT_FLAGS = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES

// ---- transmission flags (16 bits) ------------------------------------------------------
export const NBD_FLAG_HAS_FLAGS = 1 << 0
export const NBD_FLAG_READ_ONLY = 1 << 1
export const NBD_FLAG_SEND_FLUSH = 1 << 2
export const NBD_FLAG_SEND_FUA = 1 << 3
export const NBD_FLAG_ROTATIONAL = 1 << 4
export const NBD_FLAG_SEND_TRIM = 1 << 5
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6
export const NBD_FLAG_SEND_DF = 1 << 7
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8

// ---- options (client, during haggling) -------------------------------------------------
export const NBD_OPT_EXPORT_NAME = 1
export const NBD_OPT_ABORT = 2
export const NBD_OPT_LIST = 3
export const NBD_OPT_STARTTLS = 5
export const NBD_OPT_INFO = 6
export const NBD_OPT_GO = 7
export const NBD_OPT_STRUCTURED_REPLY = 8
export const NBD_OPT_LIST_META_CONTEXT = 9
export const NBD_OPT_SET_META_CONTEXT = 10

// ---- option reply types ----------------------------------------------------------------
export const NBD_REP_ACK = 1
export const NBD_REP_SERVER = 2
export const NBD_REP_INFO = 3
export const NBD_REP_META_CONTEXT = 4
const REP_ERR = 0x80000000
export const NBD_REP_ERR_UNSUP = REP_ERR + 1
export const NBD_REP_ERR_POLICY = REP_ERR + 2
export const NBD_REP_ERR_INVALID = REP_ERR + 3
export const NBD_REP_ERR_PLATFORM = REP_ERR + 4
export const NBD_REP_ERR_TLS_REQD = REP_ERR + 5
export const NBD_REP_ERR_UNKNOWN = REP_ERR + 6
export const NBD_REP_ERR_SHUTDOWN = REP_ERR + 7
export const NBD_REP_ERR_BLOCK_SIZE_REQD = REP_ERR + 8
export const NBD_REP_ERR_TOO_BIG = REP_ERR + 9

// ---- NBD_REP_INFO types ----------------------------------------------------------------
export const NBD_INFO_EXPORT = 0
export const NBD_INFO_NAME = 1
export const NBD_INFO_DESCRIPTION = 2
export const NBD_INFO_BLOCK_SIZE = 3

// ---- commands --------------------------------------------------------------------------
export const NBD_CMD_READ = 0
export const NBD_CMD_WRITE = 1
export const NBD_CMD_DISC = 2
export const NBD_CMD_FLUSH = 3
export const NBD_CMD_TRIM = 4
export const NBD_CMD_CACHE = 5
export const NBD_CMD_WRITE_ZEROES = 6
export const NBD_CMD_BLOCK_STATUS = 7

export const COMMAND_NAMES: Readonly<Record<number, string>> = {
  [NBD_CMD_READ]: 'read',
  [NBD_CMD_WRITE]: 'write',
  [NBD_CMD_DISC]: 'disc',
  [NBD_CMD_FLUSH]: 'flush',
  [NBD_CMD_TRIM]: 'trim',
  [NBD_CMD_CACHE]: 'cache',
  [NBD_CMD_WRITE_ZEROES]: 'write-zeroes',
  [NBD_CMD_BLOCK_STATUS]: 'block-status',
}

// ---- command flags ---------------------------------------------------------------------
export const NBD_CMD_FLAG_FUA = 1 << 0
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1
export const NBD_CMD_FLAG_DF = 1 << 2
export const NBD_CMD_FLAG_REQ_ONE = 1 << 3
export const NBD_CMD_FLAG_FAST_ZERO = 1 << 4

// ---- structured replies ----------------------------------------------------------------
export const NBD_REPLY_FLAG_DONE = 1 << 0
export const NBD_REPLY_TYPE_NONE = 0
export const NBD_REPLY_TYPE_OFFSET_DATA = 1
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5
export const NBD_REPLY_TYPE_ERROR = 0x8001
export const NBD_REPLY_TYPE_ERROR_OFFSET = 0x8002

// ---- base:allocation -------------------------------------------------------------------
export const BASE_ALLOCATION = 'base:allocation'
/** The id this server gives base:allocation in NBD_REP_META_CONTEXT (any nonzero is fine). */
export const BASE_ALLOCATION_ID = 1
export const NBD_STATE_HOLE = 1 << 0
export const NBD_STATE_ZERO = 1 << 1

// ---- error values on the wire (a fixed enum, not the host errno) -----------------------
export const NBD_EPERM = 1
export const NBD_EIO = 5
export const NBD_ENOMEM = 12
export const NBD_EINVAL = 22
export const NBD_ENOSPC = 28
export const NBD_EOVERFLOW = 75
export const NBD_ENOTSUP = 95
export const NBD_ESHUTDOWN = 108

// ---- sizes and limits ------------------------------------------------------------------
/** C: magic(4) flags(2) type(2) handle(8) offset(8) length(4). */
export const REQUEST_HEADER_SIZE = 28
/** S: magic(4) error(4) handle(8). */
export const SIMPLE_REPLY_HEADER_SIZE = 16
/** S: magic(4) flags(2) type(2) handle(8) length(4). */
export const STRUCTURED_REPLY_HEADER_SIZE = 20
/** C: magic(8) option(4) length(4). */
export const OPTION_HEADER_SIZE = 16
/** S: magic(8) option(4) type(4) length(4). */
export const OPTION_REPLY_HEADER_SIZE = 20
/** Zero padding after NBD_OPT_EXPORT_NAME's reply unless NO_ZEROES was agreed. */
export const EXPORT_NAME_PADDING = 124

/** Longest string the spec allows (export names, queries, messages). */
export const MAX_STRING_LENGTH = 4096
/** Largest option payload accepted; longer options close the connection before reading. */
export const MAX_OPTION_LENGTH = 64 * 1024
/** Options a client may send before choosing an export; more closes the connection. */
export const MAX_OPTIONS = 64
/** Largest READ/WRITE payload (also the advertised maximum block size). */
export const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024
export const MIN_BLOCK_SIZE = 1
export const PREFERRED_BLOCK_SIZE = 4096
/** Queries in one SET/LIST_META_CONTEXT beyond this get NBD_REP_ERR_TOO_BIG. */
export const MAX_META_QUERIES = 16
/** Block-status descriptors sent in one reply at most. */
export const MAX_EXTENTS = 1024
