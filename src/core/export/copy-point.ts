// `vdrep export --to FILE`: a sparse copy of a restore point. Zero blocks are left as holes
// (the file is sized first, only nonzero runs are written). The copy is written under a temp
// name beside FILE, synced, and only then linked to FILE (link never replaces a file that
// appeared meanwhile) and the folder synced: FILE exists only complete, so exit 0 means done.
import crypto from 'node:crypto'
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import {DiskIoError, UsageError} from '../errors.js'
import {isAllZero} from '../hash/zero.js'
import {openPoint} from '../points/point-reader.js'
import {fsyncDir} from '../util/fs-atomic.js'
import {parsePointSpec, resolvePoint} from './at.js'

/** Bytes read from the point at once, and the granularity at which zeros become holes. */
const CHUNK = 4 * 1024 * 1024
const HOLE_GRAIN = 64 * 1024

export interface CopyProgress {
  done: number
  total: number
}

export interface CopyPointOptions {
  at?: string
  progress?: (p: CopyProgress) => void
}

export interface CopiedPoint {
  replica: string
  seq: number
  time: string
  to: string
  size: number
  /** Bytes written (the rest are holes). */
  dataBytes: number
  seconds: number
}

const exists = (p: string) =>
  fs.lstat(p).then(
    () => true,
    () => false,
  )

export async function copyPoint(replica: string, to: string, opts: CopyPointOptions = {}): Promise<CopiedPoint> {
  const started = process.hrtime.bigint()
  const target = path.resolve(to)
  if (await exists(target))
    throw new UsageError('EXPORT_TARGET_EXISTS', `${target} exists; vdrep export --to never overwrites a file`, {hint: 'name a new file'})
  const point = await resolvePoint(replica, parsePointSpec(opts.at))
  const reader = await openPoint(replica, point.seq)
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.vdrep-export-${process.pid}-${crypto.randomBytes(4).toString('hex')}`)
  let fh: fs.FileHandle | undefined
  let dataBytes = 0
  try {
    fh = await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
    await fh.truncate(reader.size)
    // One read ahead: the next chunk is read from the point while this one is written.
    let next: Promise<Buffer> | null = reader.size > 0 ? reader.read(0, Math.min(CHUNK, reader.size)) : null
    for (let pos = 0; next;) {
      const buf = await next
      const after = pos + buf.length
      next = after < reader.size ? reader.read(after, Math.min(CHUNK, reader.size - after)) : null
      dataBytes += await writeNonZero(fh, buf, pos)
      pos = after
      opts.progress?.({done: pos, total: reader.size})
    }
    await fh.sync()
    await fh.close()
    fh = undefined
    try {
      await fs.link(temp, target)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST')
        throw new UsageError('EXPORT_TARGET_EXISTS', `${target} appeared while the copy was written; it was left alone`, {hint: 'name a new file'})
      throw err
    }
    await fs.rm(temp, {force: true})
    await fsyncDir(path.dirname(target))
  } catch (err) {
    await fh?.close().catch(() => {})
    await fs.rm(temp, {force: true})
    throw err
  } finally {
    await reader.close()
  }
  return {
    replica,
    seq: reader.seq,
    time: new Date(reader.ms).toISOString(),
    to: target,
    size: reader.size,
    dataBytes,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  }
}

/** Write the nonzero runs of `buf` (at HOLE_GRAIN granularity) at `pos`; returns the bytes written. */
async function writeNonZero(fh: fs.FileHandle, buf: Buffer, pos: number): Promise<number> {
  let written = 0
  let runStart = -1
  const flush = async (end: number) => {
    if (runStart < 0) return
    const part = buf.subarray(runStart, end)
    for (let off = 0; off < part.length;) {
      const {bytesWritten} = await fh.write(part, off, part.length - off, pos + runStart + off)
      if (bytesWritten <= 0) throw new DiskIoError(`writing the copy at offset ${pos + runStart + off} wrote nothing`)
      off += bytesWritten
    }
    written += part.length
    runStart = -1
  }
  for (let off = 0; off < buf.length; off += HOLE_GRAIN) {
    const end = Math.min(buf.length, off + HOLE_GRAIN)
    if (isAllZero(buf.subarray(off, end))) await flush(off)
    else if (runStart < 0) runStart = off
  }
  await flush(buf.length)
  return written
}
