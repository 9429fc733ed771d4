// Where a replica's restore points live: `<replica>.vdrep-points/`, one undo record per file,
// named for the two points it links (`undo-<from>-<to>.vdu`). The names only say where to
// look; what a file is comes from its checked header, never from its name alone.
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {UsageError} from '../errors.js'
import {fsyncDir} from '../util/fs-atomic.js'

export const POINTS_SUFFIX = '.vdrep-points'

export function pointsDirFor(replica: string): string {
  return `${replica}${POINTS_SUFFIX}`
}

export function undoName(from: number, to: number): string {
  return `undo-${from}-${to}.vdu`
}

export interface UndoName {
  name: string
  from: number
  to: number
}

const NAME = /^undo-(\d{1,15})-(\d{1,15})\.vdu$/

export function parseUndoName(name: string): UndoName | null {
  const m = NAME.exec(name)
  if (!m) return null
  const from = Number(m[1])
  const to = Number(m[2])
  return to > from ? {name, from, to} : null
}

/** The undo records in the folder (by name), or none when it does not exist. Temp files and strangers are ignored. */
export async function listUndoNames(replica: string): Promise<UndoName[]> {
  let names: string[]
  try {
    names = await fs.readdir(pointsDirFor(replica))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  const out: UndoName[] = []
  for (const n of names) {
    const u = parseUndoName(n)
    if (u) out.push(u)
  }
  return out.sort((a, b) => a.to - b.to || a.from - b.from)
}

/** The folder, made 0700 when missing; a symlink or a file in its place is refused (it would lead writes out of the root). */
export async function ensurePointsDir(replica: string): Promise<string> {
  const dir = pointsDirFor(replica)
  try {
    await fs.mkdir(dir, {mode: 0o700})
    await fsyncDir(path.dirname(dir))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  const st = await fs.lstat(dir)
  if (!st.isDirectory()) throw new UsageError('PATH_OUTSIDE_ROOT', `refusing restore point folder ${dir}: it is not a directory (a symlink?)`)
  return dir
}

/** A temp name in the folder nobody can guess (the record is renamed into place once durable). */
export function tempUndoPath(dir: string, final: string): string {
  return path.join(dir, `.${final}.tmp-${process.pid}-${crypto.randomBytes(6).toString('hex')}`)
}

/** Remove the given records (and the folder's leftover temp files when `temps`); the folder is synced once. */
export async function removeUndo(replica: string, names: string[], temps = false): Promise<void> {
  const dir = pointsDirFor(replica)
  if (temps) {
    const all = await fs.readdir(dir).catch(() => [] as string[])
    names = [...names, ...all.filter((n) => n.startsWith('.undo-'))]
  }
  if (names.length === 0) return
  for (const n of names) await fs.rm(path.join(dir, n), {force: true})
  await fsyncDir(dir).catch(() => {})
}

/** Every record goes: a full sync starts a new chain (the state's chain id is cleared before this). */
export async function dropAllPoints(replica: string): Promise<number> {
  const names = (await listUndoNames(replica)).map((u) => u.name)
  await removeUndo(replica, names, true)
  return names.length
}
