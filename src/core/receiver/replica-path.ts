// The receiver writes only under its root. A requested replica path is resolved against
// the root, must not climb out (no `..` past the root, no absolute path elsewhere), and its
// parent directory's real path must still be inside the root's real path, so a symlinked
// directory cannot lead out. The final component is opened with O_NOFOLLOW by the caller.
import fs from 'node:fs/promises'
import path from 'node:path'
import {UsageError} from '../errors.js'

export class PathOutsideRootError extends UsageError {
  constructor(requested: string, why: string) {
    super('PATH_OUTSIDE_ROOT', `refusing replica path '${requested}': ${why}`, {hint: "the receiver writes only under its --root; give a path inside it"})
  }
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p)
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel)
}

/** The absolute path of the replica, proven to be inside `root`. */
export async function resolveReplicaPath(root: string, requested: string): Promise<string> {
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
  if (realParent !== realRoot && !inside(realRoot, realParent)) throw new PathOutsideRootError(requested, 'its directory is a symlink that leads out of the root')
  const final = path.join(realParent, path.basename(lexical))
  try {
    const st = await fs.lstat(final)
    if (st.isSymbolicLink()) throw new PathOutsideRootError(requested, 'it is a symlink')
    if (!st.isFile() && !st.isBlockDevice()) throw new PathOutsideRootError(requested, 'it is not a regular file')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  return final
}
