// What `vdrep serve` does before it listens: a receiver killed between "journal complete" and
// "applied" leaves a replica half applied until the journal is replayed. Every journal under
// the root is replayed (or discarded) at start, so the replica is at the old point or the new one
// as soon as the receiver is back, not only once the next push arrives.
import fs from 'node:fs'
import path from 'node:path'
import {asVdrepError} from '../errors.js'
import {recoverJournal} from '../delta/apply.js'
import {journalPathFor} from '../delta/journal.js'
import {resolveReplicaPath} from './replica-path.js'
import {HELD_SUFFIX, settleHeld} from '../group/held-journal.js'

/**
 * Recover every journal under `root`. `lockReplica` is the server's one-writer lock: a replica
 * another receiver process is writing is left to that one (its lock throws), and the log says so.
 */
export async function recoverJournalsUnder(root: string, lockReplica: (replica: string) => Promise<() => void>, log: (line: string) => void): Promise<void> {
  // First the held bundles of group pushes (doc/group-commit.md): each is applied when a group
  // record names it and dropped when none does, so every group is at its old point or its new one.
  for (const held of await findFiles(root, HELD_SUFFIX)) {
    let release: (() => void) | undefined
    try {
      const replica = await resolveReplicaPath(root, path.relative(root, held.slice(0, -HELD_SUFFIX.length)))
      release = await lockReplica(replica)
      const outcome = await settleHeld(root, replica, log)
      if (outcome !== 'none') log(`${replica}: group member's held bundle ${outcome} at start`)
    } catch (err) {
      log(`${held}: not settled at start (the next push of the member will): ${asVdrepError(err).message}`)
    } finally {
      release?.()
    }
  }
  const suffix = journalPathFor('')
  for (const journal of await findFiles(root, suffix)) {
    let release: (() => void) | undefined
    try {
      const replica = await resolveReplicaPath(root, path.relative(root, journal.slice(0, -suffix.length)))
      release = await lockReplica(replica)
      const outcome = await recoverJournal(replica, log)
      if (outcome !== 'none') log(`${replica}: journal ${outcome} at start`)
    } catch (err) {
      log(`${journal}: not recovered at start (the next push will): ${asVdrepError(err).message}`)
    } finally {
      release?.()
    }
  }
}

/** Regular files under `dir` whose names end with `suffix`; symlinks are not followed. */
async function findFiles(dir: string, suffix: string): Promise<string[]> {
  const out: string[] = []
  let entries: fs.Dirent[]
  try {
    entries = await fs.promises.readdir(dir, {withFileTypes: true})
  } catch {
    return out
  }
  for (const e of entries) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...(await findFiles(p, suffix)))
    else if (e.isFile() && e.name.endsWith(suffix)) out.push(p)
  }
  return out
}
