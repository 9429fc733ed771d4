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
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import {StateError} from '../errors.js'
import {readReplicaState, type ReplicaState} from '../receiver/replica-state.js'
import {closeChain, loadChain} from './chain.js'
import {buildIndex, findSegment, type Segment} from './overlay.js'
import {pointsDirFor, undoName} from './store.js'
import {pinPoint, type Pin} from './pins.js'
import type {UndoFile} from './undo-file.js'

export interface PointReader {
  readonly seq: number
  /** The disk's size at that point. */
  readonly size: number
  /** The point's commit time (ms since the epoch). */
  readonly ms: number
  /** `length` bytes at `offset` as they were at the point (clipped at its size). */
  read(offset: number, length: number): Promise<Buffer>
  close(): Promise<void>
}

/** Reloads a read may take before it gives up (each means a commit began during that read). */
const MAX_RELOADS = 50

export const pointGone = (msg: string) => new StateError('POINT_GONE', msg, {hint: 'list the kept points with `vdrep points <replica>`'})

async function trustedState(replica: string): Promise<ReplicaState> {
  const {state, error} = await readReplicaState(replica)
  if (error) throw error
  if (!state) throw new StateError('POINT_UNTRUSTED', `${replica} has no vdrep state: it is not a replica, or was never synced`)
  const why = state.promoted
    ? 'it was promoted by a failover: it is a source now, written by its VM, and the undo records no longer lay over it'
    : !state.complete
      ? 'it is incomplete (a full sync is running or did not finish)'
      : state.diverged || state.doubt
        ? 'it is diverged or in doubt'
        : null
  if (why)
    throw new StateError('POINT_UNTRUSTED', `the restore points of ${replica} cannot be read: ${why}`, {hint: 'a full sync that completes starts a new chain'})
  return state
}

const sameState = (a: ReplicaState, b: ReplicaState) =>
  a.lastSeq === b.lastSeq && a.pointsChain === b.pointsChain && a.generation === b.generation && a.complete === b.complete && a.commit === b.commit

class Reader implements PointReader {
  private files: UndoFile[] = []
  private index: Segment[] = []
  private state!: ReplicaState
  private top = 0
  size = 0
  ms = 0

  constructor(
    readonly replicaPath: string,
    readonly seq: number,
    private readonly replica: fs.FileHandle,
    private readonly pin: Pin,
  ) {}

  async load(): Promise<void> {
    const state = await trustedState(this.replicaPath)
    if (this.seq > state.lastSeq) throw pointGone(`${this.replicaPath} has no point ${this.seq}: its newest is ${state.lastSeq}`)
    const chain = await loadChain(this.replicaPath, state)
    const use = chain.files.filter((f) => f.header.fromSeq >= this.seq)
    for (const f of chain.files) if (!use.includes(f)) await f.close()
    if (this.seq < state.lastSeq && use[0]?.header.fromSeq !== this.seq) {
      await closeChain({files: use, pending: chain.pending, strays: []})
      const kept = chain.files.map((f) => f.header.fromSeq)
      throw pointGone(
        `${this.replicaPath}: point ${this.seq} is not kept (kept: ${[...kept, state.lastSeq].join(', ')})${chain.problem ? `; ${chain.problem}` : ''}`,
      )
    }
    const files = chain.pending ? [...use, chain.pending] : use
    for (const f of this.files) await f.close()
    this.files = files
    this.index = buildIndex(files)
    this.state = state
    this.top = chain.pending ? state.lastSeq + 1 : state.lastSeq
    this.size = use.length > 0 ? use[0].header.fromDiskSize : state.diskSize
    this.ms = use.length > 0 ? use[0].header.fromMs : (state.commitMs ?? state.updatedMs)
  }

  /** True when a commit may have written the replica since load(): a record past our newest, or a moved state. */
  private async moved(): Promise<boolean> {
    const next = path.join(pointsDirFor(this.replicaPath), undoName(this.top, this.top + 1))
    if (
      await fs.access(next).then(
        () => true,
        () => false,
      )
    )
      return true
    const {state} = await readReplicaState(this.replicaPath)
    return !state || !sameState(state, this.state)
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) throw new RangeError(`bad read ${offset}+${length}`)
    for (let attempt = 0; ; attempt++) {
      const {buf, touched} = await this.readOnce(offset, length)
      if (!touched || !(await this.moved())) return buf
      if (attempt >= MAX_RELOADS) throw pointGone(`${this.replicaPath}: point ${this.seq} could not be read consistently (commits kept landing)`)
      try {
        await this.load()
      } catch (err) {
        if (err instanceof StateError && err.code === 'POINT_GONE')
          throw pointGone(`${this.replicaPath}: point ${this.seq} was dropped by retention while it was open`)
        throw err
      }
    }
  }

  private async readOnce(offset: number, length: number): Promise<{buf: Buffer; touched: boolean}> {
    const end = Math.min(this.size, offset + length)
    const buf = Buffer.alloc(Math.max(0, end - offset))
    const bs = this.state.blockSize
    let touched = false
    for (let pos = offset; pos < end;) {
      const block = Math.floor(pos / bs)
      const i = findSegment(this.index, block)
      const seg = this.index[i]
      if (seg && seg.block <= block) {
        const n = Math.min(end, (seg.block + seg.count) * bs) - pos
        if (!seg.zero) await this.files[seg.file].readInto(seg.extent, (seg.skip + block - seg.block) * bs + (pos % bs), n, buf, pos - offset)
        pos += n
      } else {
        const n = Math.min(end, seg ? seg.block * bs : Infinity) - pos
        await readReplica(this.replica, buf.subarray(pos - offset, pos - offset + n), pos)
        touched = true
        pos += n
      }
    }
    return {buf, touched}
  }

  async close(): Promise<void> {
    for (const f of this.files) await f.close()
    this.files = []
    await this.pin.release().catch(() => {})
    await this.replica.close().catch(() => {})
  }
}

async function readReplica(fh: fs.FileHandle, dst: Buffer, pos: number): Promise<void> {
  let got = 0
  while (got < dst.length) {
    const {bytesRead} = await fh.read(dst, got, dst.length - got, pos + got)
    if (bytesRead === 0) return // past the replica's end: zeros
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
