// The replicas under a receiver's root, for `vdrep replicas`: every file that has a replica
// state beside it (`<replica>.vdrep`, written by the receiver alone). Reads directories only:
// no lock, nothing opened for writing, symlinks never followed (the receiver never writes
// through one either). A folder the walk cannot read is reported, not fatal.
import fs from 'node:fs/promises'
import path from 'node:path'
import {POINTS_SUFFIX} from '../points/store.js'
import {statePathFor} from '../receiver/replica-state.js'

const STATE_SUFFIX = statePathFor('')

export interface Discovered {
  /** Absolute paths of the replicas (the state file's name without its suffix), sorted. */
  replicas: string[]
  /** Folders that could not be read, with why. */
  unreadable: Array<{dir: string; reason: string}>
}

/** Depth cap: a root is a folder of replicas, perhaps a few levels of groups, never a tree to crawl forever. */
const MAX_DEPTH = 16

export async function discoverReplicas(root: string): Promise<Discovered> {
  const out: Discovered = {replicas: [], unreadable: []}
  await walk(path.resolve(root), 0, out)
  out.replicas.sort()
  return out
}

async function walk(dir: string, depth: number, out: Discovered): Promise<void> {
  let entries: import('node:fs').Dirent[]
  try {
    entries = await fs.readdir(dir, {withFileTypes: true})
  } catch (err) {
    out.unreadable.push({dir, reason: (err as NodeJS.ErrnoException).code ?? (err as Error).message})
    return
  }
  for (const e of entries) {
    const p = path.join(dir, e.name)
    // A points folder belongs to its replica; temp files (".x.tmp-…") are never state.
    if (e.isDirectory() && !e.name.endsWith(POINTS_SUFFIX) && depth < MAX_DEPTH) await walk(p, depth + 1, out)
    else if (e.isFile() && e.name.endsWith(STATE_SUFFIX) && e.name.length > STATE_SUFFIX.length) {
      out.replicas.push(p.slice(0, -STATE_SUFFIX.length))
    }
  }
}
