// A group member's bundle, journaled and synced but not applied: `<replica>.vdrep-journal-held`.
// Crash recovery never replays it on its own (its name is not a journal's): it becomes the
// replica's journal only once a group record names it (store.ts), and is dropped otherwise.
// So after any crash every member of a group push is applied, or none.
import fs from 'node:fs/promises'
import path from 'node:path'
import {recoverJournal} from '../delta/apply.js'
import {journalPathFor, readJournal} from '../delta/journal.js'
import {readReplicaState} from '../receiver/replica-state.js'
import {fsyncDir} from '../util/fs-atomic.js'
import {isMembersPoint} from './points.js'
import {recordNaming} from './store.js'

export const HELD_SUFFIX = '.vdrep-journal-held'
export const heldJournalPathFor = (replica: string) => `${replica}${HELD_SUFFIX}`

/** The replica's path as group records name it: relative to the receiver's real root. */
export async function memberPath(root: string, replica: string): Promise<string> {
  return path.relative(await fs.realpath(root), replica)
}

/** The held bundle becomes the replica's journal (its group committed): rename, sync the folder. */
export async function promoteHeld(replica: string): Promise<void> {
  await fs.rename(heldJournalPathFor(replica), journalPathFor(replica))
  await fsyncDir(path.dirname(replica))
}

/**
 * Settle a held bundle left by a group push that did not finish (a crash, a lost client): a
 * group record names it, so it is applied now (the group committed); or none does, so it is
 * dropped (the group never committed, no member was applied). Safe with no held journal.
 */
export async function settleHeld(root: string, replica: string, log: (line: string) => void = () => {}): Promise<'none' | 'applied' | 'dropped'> {
  const held = heldJournalPathFor(replica)
  if (!(await fs.lstat(held).catch(() => undefined))?.isFile()) return 'none'
  let seq: number | undefined
  try {
    seq = (await readJournal(held)).header.seq
  } catch {
    // incomplete (never sealed): its group cannot have committed, the record is written after every seal
  }
  const {state} = await readReplicaState(replica)
  // A promoted replica is a source now (a VM may be writing it): it takes nothing from its old source.
  // Only a record of this replica counts: a sequence is named again by a replica seeded afresh at
  // the same path, or by this one after a full sync (group/points.ts, isMembersPoint).
  const record =
    seq !== undefined && state && !state.promoted && state.lastSeq + 1 === seq
      ? await recordNaming(root, await memberPath(root, replica), seq, (r, m) => isMembersPoint(state, r, m))
      : null
  if (!record) {
    await fs.rm(held, {force: true})
    const why = state?.promoted ? 'the replica was promoted by a failover' : 'its group never committed'
    log(`${replica}: a group push's held bundle${seq === undefined ? '' : ` (sequence ${seq})`} dropped: ${why}`)
    return 'dropped'
  }
  await promoteHeld(replica)
  const outcome = await recoverJournal(replica, log)
  log(`${replica}: group ${record.name} point ${record.groupSeq} committed; this member's bundle (sequence ${seq}) ${outcome} now`)
  return 'applied'
}
