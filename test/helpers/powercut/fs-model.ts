// What a power cut can leave of a recorded run (issue 22). The model, after ALICE and
// CrashMonkey, kept on the weak side of what Linux file systems promise:
//  - data (write, truncate, fallocate) reaches the disk at page granularity, in any order and
//    any subset, until an fsync or fdatasync of that inode returns: then all of it is durable;
//  - directory operations (create, rename, unlink, mkdir, rmdir) of one directory persist in
//    order (a prefix of them), and are durable once that directory is fsynced; a new file's name
//    and a rename are not durable before that, whatever was done to the file's data;
//  - sync_file_range, msync and the fsync of another file are not barriers.
// A rename into another directory belongs to the destination's list. mmap writes are not
// seen: a recording holding one is refused (vdrep maps files read-only).
import fs from 'node:fs/promises'
import path from 'node:path'
import {describeOp, Op, RecordingError, type Recorded} from './recording.js'

export const PAGE = 4096

/** A file or folder under the recorded roots before the run (everything in it durable). */
export type SnapshotEntry = {dir: true} | {dir: false; ino: number; data: Buffer}
export type Snapshot = Map<string, SnapshotEntry>

export async function takeSnapshot(roots: string[]): Promise<Snapshot> {
  const snap: Snapshot = new Map()
  const walk = async (dir: string) => {
    snap.set(dir, {dir: true})
    for (const e of await fs.readdir(dir, {withFileTypes: true})) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) await walk(p)
      else if (e.isFile()) snap.set(p, {dir: false, ino: (await fs.stat(p)).ino, data: await fs.readFile(p)})
    }
  }
  for (const r of roots) await walk(await fs.realpath(r))
  return snap
}

/** One piece of unsynced data: a page of a write, a truncate, a zeroed or allocated range. */
export interface Unit {
  id: number
  inode: number
  kind: 'write' | 'truncate' | 'zero' | 'extend'
  offset: number
  size: number
  data?: Buffer
  op: number
}

export interface DirOp {
  dir: string
  kind: 'create' | 'rename' | 'unlink' | 'mkdir' | 'rmdir'
  path: string
  path2?: string
  inode?: number
  op: number
}

/** The crash just before op `at` (ops.length: after the last one). */
export interface CrashPoint {
  at: number
  what: string
  /** Durable content of every inode, and its unsynced units in order. */
  durable: Map<number, Buffer>
  pending: Unit[]
  /** Directory operations durable at this point (global order). */
  durableDirOps: DirOp[]
  /** Per directory, the operations not yet durable, in order. */
  pendingDirOps: Map<string, DirOp[]>
}

export interface Timeline {
  snapshot: Snapshot
  /** The inode of each snapshot file (internal ids). */
  initial: Map<string, number>
  points: CrashPoint[]
}

const FALLOC_KEEP_SIZE = 1
const FALLOC_PUNCH_HOLE = 2
const FALLOC_ZERO_RANGE = 16

export function applyUnit(b: Buffer, u: Unit): Buffer {
  const grow = (len: number) => {
    if (len <= b.length) return b
    const n = Buffer.alloc(len)
    b.copy(n)
    return n
  }
  switch (u.kind) {
    case 'write':
      b = grow(u.offset + u.size)
      u.data!.copy(b, u.offset)
      return b
    case 'truncate':
      return u.size <= b.length ? b.subarray(0, u.size) : grow(u.size)
    case 'zero':
      b.fill(0, Math.min(u.offset, b.length), Math.min(u.offset + u.size, b.length))
      return b
    case 'extend':
      return grow(u.offset + u.size)
  }
}

/** `base` with `units` laid over it in order (base is not changed). */
export function contentWith(base: Buffer, units: Unit[]): Buffer {
  let b: Buffer = Buffer.from(base)
  for (const u of units) b = applyUnit(b, u)
  return b
}

/** Replay a recording: one crash point before every barrier, and one at the end. */
export function buildTimeline(ops: Recorded[], snapshot: Snapshot): Timeline {
  let nextInode = 1
  const byIno = new Map<number, number>()
  const initial = new Map<string, number>()
  const durable = new Map<number, Buffer>()
  for (const [p, e] of snapshot) {
    if (e.dir) continue
    const id = nextInode++
    initial.set(p, id)
    byIno.set(e.ino, id)
    durable.set(id, e.data)
  }
  const pending = new Map<number, Unit[]>()
  const durableDirOps: DirOp[] = []
  const pendingDirOps = new Map<string, DirOp[]>()
  const points: CrashPoint[] = []
  let unitId = 0
  const point = (at: number, what: string) =>
    points.push({
      at,
      what,
      durable: new Map(durable),
      pending: [...pending.values()].flat().sort((a, b) => a.id - b.id),
      durableDirOps: [...durableDirOps],
      pendingDirOps: new Map([...pendingDirOps].map(([d, l]) => [d, [...l]])),
    })
  const inodeOf = (r: Recorded) => {
    const id = byIno.get(r.ino)
    if (id === undefined) throw new RecordingError(`recording: op ${r.index} (${describeOp(r)}) is on an inode the snapshot does not have`)
    return id
  }
  const addUnit = (u: Omit<Unit, 'id'>) => {
    const l = pending.get(u.inode) ?? []
    l.push({...u, id: unitId++})
    pending.set(u.inode, l)
  }
  const addDirOp = (d: DirOp) => {
    const l = pendingDirOps.get(d.dir) ?? []
    l.push(d)
    pendingDirOps.set(d.dir, l)
  }
  for (const r of ops) {
    switch (r.op) {
      case Op.CREATE: {
        const id = nextInode++
        byIno.set(r.ino, id)
        durable.set(id, Buffer.alloc(0))
        addDirOp({dir: path.dirname(r.path), kind: 'create', path: r.path, inode: id, op: r.index})
        break
      }
      case Op.WRITE: {
        const inode = inodeOf(r)
        // One unit per page the write touches: the page cache writes back pages, not calls.
        for (let off = r.offset; off < r.offset + r.size;) {
          const end = Math.min(r.offset + r.size, (Math.floor(off / PAGE) + 1) * PAGE)
          addUnit({inode, kind: 'write', offset: off, size: end - off, data: r.data.subarray(off - r.offset, end - r.offset), op: r.index})
          off = end
        }
        break
      }
      case Op.TRUNCATE:
        addUnit({inode: inodeOf(r), kind: 'truncate', offset: 0, size: r.size, op: r.index})
        break
      case Op.FALLOCATE: {
        const inode = inodeOf(r)
        if (r.arg & (FALLOC_PUNCH_HOLE | FALLOC_ZERO_RANGE)) addUnit({inode, kind: 'zero', offset: r.offset, size: r.size, op: r.index})
        if (!(r.arg & FALLOC_KEEP_SIZE)) addUnit({inode, kind: 'extend', offset: r.offset, size: r.size, op: r.index})
        break
      }
      case Op.FSYNC:
      case Op.FDATASYNC: {
        point(r.index, describeOp(r))
        const inode = inodeOf(r)
        durable.set(inode, contentWith(durable.get(inode)!, pending.get(inode) ?? []))
        pending.delete(inode)
        break
      }
      case Op.DIR_FSYNC: {
        point(r.index, describeOp(r))
        durableDirOps.push(...(pendingDirOps.get(r.path) ?? []))
        durableDirOps.sort((a, b) => a.op - b.op)
        pendingDirOps.delete(r.path)
        break
      }
      case Op.RENAME:
        addDirOp({dir: path.dirname(r.path2), kind: 'rename', path: r.path, path2: r.path2, op: r.index})
        break
      case Op.UNLINK:
      case Op.RMDIR:
        addDirOp({dir: path.dirname(r.path), kind: r.op === Op.UNLINK ? 'unlink' : 'rmdir', path: r.path, op: r.index})
        break
      case Op.MKDIR:
        addDirOp({dir: path.dirname(r.path), kind: 'mkdir', path: r.path, op: r.index})
        break
      case Op.SYNC_RANGE:
      case Op.MSYNC:
        break // write-back hints, not barriers
      case Op.MMAP_WRITE:
      case Op.UNSUPPORTED:
        throw new RecordingError(`recording: op ${r.index} (${describeOp(r)}) writes in a way the crash model cannot replay`)
    }
  }
  point(ops.length, 'the end of the run')
  return {snapshot, initial, points}
}

/** Which of a crash point's unsynced operations reached the disk. */
export interface CrashChoice {
  /** Units kept (by id). */
  keep: Set<number>
  /** Per directory, how many of its pending operations persisted (a prefix). */
  prefix: Map<string, number>
}

/** The files and folders a crash state leaves: path → content, or null for a folder. */
export function crashState(t: Timeline, p: CrashPoint, c: CrashChoice): Map<string, Buffer | null> {
  const ns = new Map<string, number | null>()
  for (const [q, e] of t.snapshot) ns.set(q, e.dir ? null : t.initial.get(q)!)
  const included = [...p.durableDirOps]
  for (const [dir, ops] of p.pendingDirOps) included.push(...ops.slice(0, c.prefix.get(dir) ?? 0))
  included.sort((a, b) => a.op - b.op)
  for (const d of included) {
    const parentThere = ns.get(path.dirname(d.kind === 'rename' ? d.path2! : d.path)) === null
    switch (d.kind) {
      case 'create':
        if (parentThere) ns.set(d.path, d.inode!)
        break
      case 'mkdir':
        if (parentThere) ns.set(d.path, null)
        break
      case 'unlink':
      case 'rmdir':
        ns.delete(d.path)
        break
      case 'rename': {
        if (!ns.has(d.path) || !parentThere) break
        for (const [q, v] of [...ns]) {
          if (q === d.path || q.startsWith(`${d.path}/`)) {
            ns.delete(q)
            ns.set(d.path2! + q.slice(d.path.length), v)
          }
        }
        break
      }
    }
  }
  const kept = new Map<number, Unit[]>()
  for (const u of p.pending) if (c.keep.has(u.id)) kept.set(u.inode, [...(kept.get(u.inode) ?? []), u])
  const out = new Map<string, Buffer | null>()
  for (const [q, v] of ns) out.set(q, v === null ? null : contentWith(p.durable.get(v) ?? Buffer.alloc(0), kept.get(v) ?? []))
  return out
}
