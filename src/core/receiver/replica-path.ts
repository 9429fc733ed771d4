// The receiver writes only under its root. A requested replica path is resolved against
// the root, must not climb out (no `..` past the root, no absolute path elsewhere), and its
// parent directory's real path must still be inside the root's real path, so a symlinked
// directory cannot lead out. The final component is opened with O_NOFOLLOW by the caller.
import fs from 'node:fs/promises'
import path from 'node:path'
import {UsageError} from '../errors.js'

export class PathOutsideRootError extends UsageError {
  constructor(requested: string, why: string) {
    super('PATH_OUTSIDE_ROOT', `refusing replica path '${requested}': ${why}`, {hint: 'the receiver writes only under its --root; give a path inside it'})
  }
}

/**
 * Names the receiver keeps beside a replica (its state, journal, lock, and the temp files of
 * atomic replacement). A replica may not be named so: `web.img.vdrep-journal` as a replica
 * would be discarded as web.img's unreadable journal, `web.img.vdrep` overwritten by its state.
 */
const RESERVED = [/\.vdrep$/, /\.vdrep-journal$/, /\.vdrep-points$/, /\.vdrep-test$/, /\.vdrep\.lock$/, /\.vdrep\.cow$/, /^\..+\.tmp-\d+(-[0-9a-f]+)?$/]

/**
 * Every directory from the root down to the replica's must be the receiver's own (or root's)
 * and writable by nobody else: the checks here are of path names, and a directory another
 * user could write is one where a symlink could be swapped in after them (the state file,
 * the journal and the lock are opened by name later).
 */
async function checkOwnedDirs(realRoot: string, realParent: string, requested: string): Promise<void> {
  const uid = process.getuid?.()
  if (uid === undefined) return
  const rel = path.relative(realRoot, realParent)
  const dirs = [realRoot]
  if (rel !== '') for (const part of rel.split(path.sep)) dirs.push(path.join(dirs[dirs.length - 1], part))
  for (const d of dirs) {
    const st = await fs.lstat(d)
    if (st.uid !== uid && st.uid !== 0) throw new PathOutsideRootError(requested, `the directory ${d} belongs to uid ${st.uid}, not to the receiver's user`)
    if (st.mode & 0o022)
      throw new PathOutsideRootError(requested, `the directory ${d} is writable by other users (mode ${(st.mode & 0o7777).toString(8)}); run chmod go-w on it`)
  }
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p)
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel)
}

/**
 * Whether `final` names one of the receiver's own files (its log, its config): by path, by
 * real path, or as another link to the same inode. A replica written there would destroy it.
 */
async function isReceiverFile(final: string, own: string): Promise<boolean> {
  if (path.resolve(own) === final) return true
  const real = await fs.realpath(own).catch(() => undefined)
  if (real === final) return true
  const [a, b] = await Promise.all([fs.stat(own).catch(() => undefined), fs.stat(final).catch(() => undefined)])
  return a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino
}

/**
 * The absolute path of the replica, proven to be inside `root` and not to be one of
 * `receiverFiles` (the receiver's log file and config file, which may sit under the root).
 */
export async function resolveReplicaPath(root: string, requested: string, receiverFiles: readonly string[] = []): Promise<string> {
  if (requested.length === 0 || requested.includes('\0')) throw new PathOutsideRootError(requested, 'empty or contains NUL')
  if (requested.split(/[\\/]+/).includes('..')) throw new PathOutsideRootError(requested, "it contains '..'")
  const realRoot = await fs.realpath(root)
  const candidate = path.isAbsolute(requested) ? path.resolve(requested) : path.resolve(realRoot, requested)
  // An absolute path is accepted when it names a place under the root (as given or as resolved).
  const rootAsGiven = path.resolve(root)
  let lexical: string
  if (inside(realRoot, candidate)) lexical = candidate
  else if (inside(rootAsGiven, candidate)) lexical = path.join(realRoot, path.relative(rootAsGiven, candidate))
  else throw new PathOutsideRootError(requested, `it is not under the root ${root}`)
  let realParent: string
  try {
    realParent = await fs.realpath(path.dirname(lexical))
  } catch {
    throw new PathOutsideRootError(requested, `its directory ${path.dirname(lexical)} does not exist`)
  }
  if (realParent !== realRoot && !inside(realRoot, realParent))
    throw new PathOutsideRootError(requested, 'its directory is a symlink that leads out of the root')
  await checkOwnedDirs(realRoot, realParent, requested)
  const final = path.join(realParent, path.basename(lexical))
  if (RESERVED.some((r) => r.test(path.basename(final))))
    throw new PathOutsideRootError(requested, 'the name is one the receiver keeps for its own files beside a replica (.vdrep, .vdrep-journal, .vdrep.lock)')
  for (const own of receiverFiles) {
    if (await isReceiverFile(final, own)) {
      throw new UsageError('REPLICA_IS_RECEIVER_FILE', `refusing replica path '${requested}': it is the receiver's own file ${own}`, {
        hint: 'give a replica path that names no file of vdrep serve (its --log-file, its config)',
      })
    }
  }
  try {
    const st = await fs.lstat(final)
    if (st.isSymbolicLink()) throw new PathOutsideRootError(requested, 'it is a symlink')
    if (!st.isFile() && !st.isBlockDevice()) throw new PathOutsideRootError(requested, 'it is not a regular file')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  return final
}
