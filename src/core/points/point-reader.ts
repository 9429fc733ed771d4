// Read a restore point: the disk as it was at commit `seq`, without copying it. The undo
// records from `seq` up to the newest (and the record of a commit under way, which is complete
// before its apply writes anything) are laid over the replica; their index is kept in memory.
//
// Pushes go on committing while a reader is open. Records never change once in place, and
// the reader keeps the ones it uses open (a record retention deletes still reads). Only reads
// that touch the replica itself can be disturbed, by an apply: so after such a read the reader
// checks that no commit began (no record from its newest point to the next) and that the
// replica's state did not move; if either happened it reloads the chain, which now holds the
// pre-images of whatever the apply overwrote, and reads again. A capture is in place before
// the apply's first write and the state moves before retention removes anything, so the check
// cannot miss a write the read saw (see doc/points-format.md, "Readers").
//
// The check runs after nearly every read of an export, so it must cost a couple of cached
// metadata lookups, not a read and decode of the state. The state is only ever replaced (temp,
// then rename: receiver/replica-state.ts), never written in place, so "the state moved" is "the
// path names another inode than the one the view read". The view keeps that inode open, so its
// number cannot be given to a new file meanwhile: equal numbers mean the same, unreplaced file.
import {constants, existsSync, lstatSync} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import {StateError} from '../errors.js'
import {statePathFor, type ReplicaState} from '../receiver/replica-state.js'
import {openTrustedState, type OpenState} from './reader-state.js'
import {extentsOf, type PointExtent} from './point-extents.js'
import {closeChain, loadChain} from './chain.js'
import {buildIndex, findSegment, type Segment} from './overlay.js'
import {pointsDirFor, undoName} from './store.js'
import {pinPoint, type Pin} from './pins.js'
import type {UndoFile} from './undo-file.js'

export type {PointExtent} from './point-extents.js'

export interface PointReader {
  readonly seq: number
  /** The disk's size at that point. */
  readonly size: number
  /** The point's commit time (ms since the epoch). */
  readonly ms: number
  /** `length` bytes at `offset` as they were at the point (clipped at its size). */
  read(offset: number, length: number): Promise<Buffer>
  /** Runs from `offset` that read as zeros or hold data (clipped at its size; may cover less, never nothing). */
  extents?(offset: number, length: number): Promise<PointExtent[]>
  close(): Promise<void>
}

/** Reloads a read may take before it gives up (each means a commit began during that read). */
const MAX_RELOADS = 50

export const pointGone = (msg: string) => new StateError('POINT_GONE', msg, {hint: 'list the kept points with `vdrep points <replica>`'})

/**
 * One loaded chain: the records, their index and the state they were read against. Never
 * changed once built; a reload builds a new one. Reads run concurrently (an NBD export has many
 * in flight), so each read uses the view it started with, to its end: a view's records are
 * closed only once it is replaced and no read uses it any more.
 */
interface View {
  files: UndoFile[]
  index: Segment[]
  state: ReplicaState
  stateFile: OpenState
  top: number
  users: number
  retired: boolean
}

function closeView(v: View): void {
  for (const f of v.files) void f.close()
  void v.stateFile.fh.close().catch(() => {})
}

class Reader implements PointReader {
  private view: View | null = null
  private reloading: Promise<void> | null = null
  /** The check of the reads finished in this turn, not started yet (see moved()). */
  private nextCheck: {view: View; result: Promise<boolean>} | null = null
  /** The generation and chain the point was opened in (see buildOn). */
  private origin?: {generation: number; chain?: string}
  size = 0
  ms = 0

  constructor(
    readonly replicaPath: string,
    readonly seq: number,
    private readonly replica: fs.FileHandle,
    private readonly pin: Pin,
  ) {}

  async load(): Promise<void> {
    this.install(await this.build())
  }

  private async build(): Promise<View> {
    const stateFile = await openTrustedState(this.replicaPath)
    try {
      return await this.buildOn(stateFile)
    } catch (err) {
      await stateFile.fh.close().catch(() => {})
      throw err
    }
  }

  private async buildOn(stateFile: OpenState): Promise<View> {
    const {state} = stateFile
    if (this.seq > state.lastSeq) throw pointGone(`${this.replicaPath} has no point ${this.seq}: its newest is ${state.lastSeq}`)
    // A sequence names a point only within one generation and chain: a full sync rewrites the
    // replica in place and keeps the sequence, so "point N" after it is another disk.
    const reloading = this.origin !== undefined
    this.origin ??= {generation: state.generation, chain: state.pointsChain}
    if (state.generation !== this.origin.generation || (this.origin.chain !== undefined && state.pointsChain !== this.origin.chain))
      throw pointGone(`${this.replicaPath}: a full sync rewrote the replica while point ${this.seq} was open; that point is gone`)
    const chain = await loadChain(this.replicaPath, state)
    const use = chain.files.filter((f) => f.header.fromSeq >= this.seq)
    for (const f of chain.files) if (!use.includes(f)) await f.close()
    if (this.seq < state.lastSeq && use[0]?.header.fromSeq !== this.seq) {
      await closeChain({files: use, pending: chain.pending, strays: []})
      const kept = chain.files.map((f) => f.header.fromSeq)
      const why = reloading ? 'was dropped by retention while it was open' : 'is not kept'
      throw pointGone(
        `${this.replicaPath}: point ${this.seq} ${why} (kept: ${[...kept, state.lastSeq].join(', ')})${chain.problem ? `; ${chain.problem}` : ''}`,
      )
    }
    const files = chain.pending ? [...use, chain.pending] : use
    // The point's size and time: the same whichever view reads it.
    this.size = use.length > 0 ? use[0].header.fromDiskSize : state.diskSize
    this.ms = use.length > 0 ? use[0].header.fromMs : (state.commitMs ?? state.updatedMs)
    return {
      files,
      index: buildIndex(files),
      state,
      stateFile,
      top: chain.pending ? state.lastSeq + 1 : state.lastSeq,
      users: 0,
      retired: false,
    }
  }

  private install(v: View): void {
    const old = this.view
    this.view = v
    if (old) this.release(old, true)
  }

  /** Drop a use of `v` (or retire it); its records close when it is retired and unused. */
  private release(v: View, retire = false): void {
    if (retire) v.retired = true
    else v.users--
    if (v.retired && v.users === 0) closeView(v)
  }

  /**
   * True when a commit may have written the replica since `v` was loaded: a record past its
   * newest, or a moved state. The reads that finish in one turn of the event loop share one
   * check, started after all of them finished (so it covers each of them): an export with
   * dozens of reads in flight pays for one check per turn, not one per read.
   */
  private moved(v: View): Promise<boolean> {
    if (this.nextCheck?.view === v) return this.nextCheck.result
    const check = {
      view: v,
      result: new Promise<boolean>((resolve, reject) => {
        setImmediate(() => {
          if (this.nextCheck === check) this.nextCheck = null
          this.movedNow(v).then(resolve, reject)
        })
      }),
    }
    this.nextCheck = check
    return check.result
  }

  private async movedNow(v: View): Promise<boolean> {
    // Synchronous on purpose: two lookups of cached metadata cost less than two trips to the
    // thread pool, and nothing is read.
    if (existsSync(path.join(pointsDirFor(this.replicaPath), undoName(v.top, v.top + 1)))) return true
    try {
      const st = lstatSync(statePathFor(this.replicaPath))
      return st.ino !== v.stateFile.ino || st.dev !== v.stateFile.dev
    } catch {
      return true // no state any more: whatever happened, reload and say so
    }
  }

  /** A new view, unless one newer than `seen` is in place or on its way (one reload at a time). */
  private reload(seen: View): Promise<void> {
    if (this.view !== seen) return Promise.resolve()
    this.reloading ??= this.build()
      .then((v) => this.install(v))
      .finally(() => (this.reloading = null))
    return this.reloading
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) throw new RangeError(`bad read ${offset}+${length}`)
    return this.consistent((v) => this.readOnce(v, offset, length))
  }

  async extents(offset: number, length: number): Promise<PointExtent[]> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) throw new RangeError(`bad extents ${offset}+${length}`)
    const end = Math.min(this.size, offset + length)
    return this.consistent(async (v) => extentsOf(v.index, v.state.blockSize, this.replica.fd, offset, end))
  }

  /** `fn` on the current view, again on a new one while a commit may have changed what it saw of the replica. */
  private async consistent<T>(fn: (v: View) => Promise<{value: T; touched: boolean}>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const v = this.view
      if (!v) throw new StateError('POINT_GONE', `${this.replicaPath}: the reader of point ${this.seq} is closed`)
      v.users++
      try {
        const {value, touched} = await fn(v)
        // Valid when no commit could have written what it read from the replica: checked after the read.
        if (!touched || !(await this.moved(v))) return value
      } finally {
        this.release(v)
      }
      if (attempt >= MAX_RELOADS) throw pointGone(`${this.replicaPath}: point ${this.seq} could not be read consistently (commits kept landing)`)
      await this.reload(v)
    }
  }

  private async readOnce(v: View, offset: number, length: number): Promise<{value: Buffer; touched: boolean}> {
    const end = Math.min(this.size, offset + length)
    // Every byte is written below (zero segments and past the replica's end explicitly).
    const buf = Buffer.allocUnsafe(Math.max(0, end - offset))
    const bs = v.state.blockSize
    let touched = false
    for (let pos = offset; pos < end;) {
      const block = Math.floor(pos / bs)
      const i = findSegment(v.index, block)
      const seg = v.index[i]
      if (seg && seg.block <= block) {
        const n = Math.min(end, (seg.block + seg.count) * bs) - pos
        if (seg.zero) buf.fill(0, pos - offset, pos - offset + n)
        else await v.files[seg.file].readInto(seg.extent, (seg.skip + block - seg.block) * bs + (pos % bs), n, buf, pos - offset)
        pos += n
      } else {
        const n = Math.min(end, seg ? seg.block * bs : Infinity) - pos
        await readReplica(this.replica, buf.subarray(pos - offset, pos - offset + n), pos)
        touched = true
        pos += n
      }
    }
    return {value: buf, touched}
  }

  async close(): Promise<void> {
    await this.reloading?.catch(() => {})
    const v = this.view
    this.view = null
    if (v) this.release(v, true)
    await this.pin.release().catch(() => {})
    await this.replica.close().catch(() => {})
  }
}

async function readReplica(fh: fs.FileHandle, dst: Buffer, pos: number): Promise<void> {
  let got = 0
  while (got < dst.length) {
    const {bytesRead} = await fh.read(dst, got, dst.length - got, pos + got)
    if (bytesRead === 0) {
      dst.fill(0, got) // past the replica's end: zeros
      return
    }
    got += bytesRead
  }
}

/** A reader of point `seq` of `replica` (a path the caller resolved). Close it when done. */
export async function openPoint(replica: string, seq: number): Promise<PointReader> {
  const fh = await fs.open(replica, constants.O_RDONLY | constants.O_NOFOLLOW)
  let pin: Pin | undefined
  let r: Reader | undefined
  try {
    // Pinned before the chain is read: a retention that runs after the pin keeps the point.
    pin = await pinPoint(replica, seq)
    r = new Reader(replica, seq, fh, pin)
    await r.load()
    return r
  } catch (err) {
    if (r) await r.close()
    else {
      await pin?.release()
      await fh.close()
    }
    throw err
  }
}
