// What the NBD server serves: one export backed by something that can read, write,
// zero, trim, flush and report allocation. The tracker's recording layer wraps one of
// these (marking each write in the dirty bitmap before passing it on), so keep it narrow.

/** One run of the export with the same allocation status (base:allocation). */
export interface NbdExtent {
  /** Bytes; nonzero. */
  length: number
  /** Not allocated in the backing store (NBD_STATE_HOLE). */
  hole: boolean
  /** Reads as zeroes (NBD_STATE_ZERO). */
  zero: boolean
}

export interface NbdWriteZeroesOptions {
  /** Persist before returning (NBD_CMD_FLAG_FUA). */
  fua: boolean
  /** The range must stay allocated: write zeroes, never punch a hole (NBD_CMD_FLAG_NO_HOLE). */
  noHole: boolean
}

/**
 * The server validates every range against `size` before calling; offsets and lengths
 * are always inside the export. Failures are thrown; the server maps them to NBD error
 * codes (`nbdErrorOf`): an errno `code` on the error or on its `cause` (ENOSPC, EIO,
 * EROFS...) decides, anything else is EIO.
 */
export interface NbdBackend {
  /** Export size in bytes. */
  readonly size: number
  /** The name clients ask for (the disk's file name); the empty name also selects it. */
  readonly exportName: string
  /** Exactly `length` bytes at `offset`. */
  read(offset: number, length: number): Promise<Buffer>
  write(offset: number, data: Buffer, fua: boolean): Promise<void>
  writeZeroes(offset: number, length: number, opts: NbdWriteZeroesOptions): Promise<void>
  /** May discard; afterwards the range reads as zeroes or keeps its old contents. */
  trim(offset: number, length: number, fua: boolean): Promise<void>
  /** Everything written before the call reaches stable storage. */
  flush(): Promise<void>
  /** Consecutive extents starting at `offset`; they may cover less than `length` but not nothing. */
  blockStatus(offset: number, length: number): Promise<NbdExtent[]>
}
