// Where a disk's state lives: its `.psf` and the files named after it (the disk lock, the
// tracker's control socket and copy-on-write side file). Beside a regular file, as `init` has
// always put them; in a state folder for a block device (a node in /dev sits on a tmpfs that
// is gone at the next boot, and a copy-on-write file there would fill RAM), and for every disk
// when a state folder is named (`--state-dir`, or VDREP_STATE_DIR). The folder mirrors the
// disk's canonical path, `/dev/loop3` -> `/var/lib/vdrep/dev/loop3.psf`: readable, and one
// path maps to one name, so no two disks can share a record. psfPathFor is the one place that
// decides; every other state file is derived from its answer (statePathFor).
import fs from 'node:fs'
import path from 'node:path'

/** The state folder of a block device when none is named. */
export const DEFAULT_STATE_DIR = '/var/lib/vdrep'
/** Names a state folder for every disk (tests use it so they never write /var/lib/vdrep). */
export const STATE_DIR_ENV = 'VDREP_STATE_DIR'

const PSF_SUFFIX = '.psf'

/** Named by `--state-dir` for this process (a command sets it once, before any disk is touched). */
let named: string | undefined

/** `--state-dir DIR`: every disk's state goes under DIR; undefined goes back to the environment. */
export function setStateDir(dir: string | undefined): void {
  named = dir === undefined || dir === '' ? undefined : path.resolve(dir)
}

/** The state folder named for every disk (`--state-dir`, else VDREP_STATE_DIR), or undefined. */
export function namedStateDir(): string | undefined {
  if (named !== undefined) return named
  const env = process.env[STATE_DIR_ENV]
  return env === undefined || env === '' ? undefined : path.resolve(env)
}

function isBlockDevice(p: string): boolean {
  try {
    return fs.statSync(p).isBlockDevice()
  } catch {
    return false // missing or unreadable: the open that follows says why
  }
}

/** The disk's path with symlinks resolved (`/dev/disk/by-id/...` -> `/dev/sdb`), else as given. */
function canonical(abs: string): string {
  try {
    return fs.realpathSync(abs)
  } catch {
    return abs
  }
}

/** The state folder this disk's state is kept in, or null when it is kept beside the disk. */
export function stateDirFor(disk: string): string | null {
  const dir = namedStateDir()
  if (dir !== undefined) return dir
  return isBlockDevice(disk) ? DEFAULT_STATE_DIR : null
}

/**
 * `<disk>.psf` beside a regular file; `<state dir>/<canonical path>.psf` for a block device or
 * when a state folder is named. The one place that decides where a disk's state lives.
 */
export function psfPathFor(disk: string): string {
  const dir = stateDirFor(disk)
  if (dir === null) return `${disk}${PSF_SUFFIX}`
  // path.join keeps the canonical path's folders below the state folder (never an escape: it is absolute and normalized).
  return `${path.join(dir, canonical(path.resolve(disk)))}${PSF_SUFFIX}`
}

/** A state file named after the disk's record: `<where the .psf is, without .psf><suffix>`. */
export function statePathFor(disk: string, suffix: string): string {
  return `${psfPathFor(disk).slice(0, -PSF_SUFFIX.length)}${suffix}`
}

/**
 * Create the folders a state file in a state folder needs (owner only: a record names its
 * replica and holds the hash key). Beside a disk nothing is created: that folder is the disk's.
 */
export async function ensureStateFolder(disk: string): Promise<void> {
  if (stateDirFor(disk) === null) return
  await fs.promises.mkdir(path.dirname(psfPathFor(disk)), {recursive: true, mode: 0o700})
}

/**
 * The disks whose records are kept in the state folder (`vdrep status` with no disk): every
 * `<dir>/<path>.psf` names the disk `/<path>`. The named folder, else the default one.
 */
export async function disksInStateFolder(): Promise<string[]> {
  const dir = namedStateDir() ?? DEFAULT_STATE_DIR
  const names = await fs.promises.readdir(dir, {recursive: true}).catch(() => [] as string[])
  return names
    .filter((n) => n.endsWith(PSF_SUFFIX) && path.basename(n).length > PSF_SUFFIX.length)
    .sort()
    .map((n) => path.join('/', n.slice(0, -PSF_SUFFIX.length)))
}
