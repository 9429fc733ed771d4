// Group records that can no longer be restored are dropped, so a group pushed every few minutes
// does not pile up a record per push forever (each `points`, restart recovery and GROUP_APPLY
// reads them). A record goes only when a member's replica, readable and trusted, has moved past
// the record's sequence and no longer keeps that point (its retention dropped it): the group
// cannot be put back to it. The newest record always stays (restart recovery decides a held
// bundle by it), and a member whose points cannot be listed keeps every record it is in.
import fs from 'node:fs/promises'
import path from 'node:path'
import {listPoints} from '../points/list.js'
import {fsyncDir} from '../util/fs-atomic.js'
import {groupDir, readGroupRecord, recordFile, sequences} from './store.js'

/** What a member replica keeps: its current sequence and its points; null when it cannot say (unreadable, untrusted). */
async function keptPoints(root: string, rel: string): Promise<{current: number; seqs: Set<number>} | null> {
  try {
    const l = await listPoints(path.join(root, rel))
    const current = l.points.find((p) => p.current)
    if (l.untrusted !== undefined || l.problem !== undefined || !current) return null
    return {current: current.seq, seqs: new Set(l.points.map((p) => p.seq))}
  } catch {
    return null
  }
}

/** Drops `name`'s records that cannot be restored; returns their group sequences. */
export async function pruneGroupRecords(root: string, name: string): Promise<number[]> {
  const seqs = await sequences(root, name)
  const kept = new Map<string, Promise<{current: number; seqs: Set<number>} | null>>()
  const keptBy = (rel: string) => {
    let k = kept.get(rel)
    if (!k) kept.set(rel, (k = keptPoints(root, rel)))
    return k
  }
  const dropped: number[] = []
  for (const seq of seqs.slice(0, -1)) {
    const r = await readGroupRecord(root, name, seq).catch(() => null)
    if (!r) continue // unreadable records are reported by `points`; not ours to remove
    let gone = false
    for (const m of r.members) {
      const k = await keptBy(m.path)
      if (k !== null && m.seq < k.current && !k.seqs.has(m.seq)) gone = true
    }
    if (!gone) continue
    // Another member's session may prune the same record at the same time.
    const unlinked = await fs.unlink(recordFile(root, name, seq)).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return false
        throw err
      },
    )
    if (unlinked) dropped.push(seq)
  }
  if (dropped.length > 0) await fsyncDir(groupDir(root, name))
  return dropped
}

/** pruneGroupRecords for a receiver session: what it dropped, or why it could not, goes to `log`; never throws. */
export async function pruneGroupRecordsQuietly(root: string, name: string, log: (line: string) => void): Promise<void> {
  await pruneGroupRecords(root, name).then(
    (dropped) => {
      if (dropped.length > 0) log(`group ${name}: the records of points no member can be put back to are dropped: ${dropped.join(', ')}`)
    },
    (err: Error) => log(`group ${name}: old records not pruned (the next group push tries again): ${err.message}`),
  )
}
