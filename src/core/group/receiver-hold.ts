// The receiver's side of one member of a group push, after its bundle is journaled and held
// (held-journal.ts): say JOURNALED, then wait. GROUP_COMMIT (on one member's session) writes
// the group record once every member named is held here; GROUP_APPLY (on every member's
// session) lets this member apply. A client gone before either leaves the outcome to the
// record: named, the member is applied anyway; not named, its bundle is dropped.
import fs from 'node:fs/promises'
import {ProtocolError, StateError} from '../errors.js'
import {FrameType} from '../protocol/frame.js'
import type {FrameSource} from '../protocol/frame-reader.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import {decodeGroupApply, decodeGroupCommit, encodeGroupCommitted, encodeJournaled, type GroupCommit} from '../protocol/group-messages.js'
import {readJournal} from '../delta/journal.js'
import {resolveReplicaPath} from '../receiver/replica-path.js'
import {readReplicaState} from '../receiver/replica-state.js'
import {heldJournalPathFor, memberPath, promoteHeld, settleHeld} from './held-journal.js'
import {readGroupRecord, writeGroupRecord} from './store.js'
import type {GroupMember} from './record.js'

export interface HeldMember {
  root: string
  replica: string
  seq: number
  replicaId: Buffer
}

/**
 * Returns the group's name when this member's group committed and its held bundle is now the
 * replica's journal, for the session to apply; null when the session has nothing more to do.
 */
export async function holdForGroup(m: HeldMember, reader: FrameSource, writer: FrameWriter, log: (line: string) => void): Promise<string | null> {
  let promoted = false
  let recorded = false
  try {
    await writer.send(FrameType.JOURNALED, encodeJournaled(m.seq))
    for (;;) {
      const frame = await reader.next()
      if (!frame) return null
      if (frame.type === FrameType.GROUP_COMMIT) {
        if (recorded) throw new ProtocolError('FRAME_UNEXPECTED', 'a second GROUP_COMMIT on one session')
        recorded = true
        const groupSeq = await commitGroup(m, decodeGroupCommit(frame.payload))
        log(`group point ${groupSeq} committed (its record is written; the members apply)`)
        await writer.send(FrameType.GROUP_COMMITTED, encodeGroupCommitted(groupSeq))
      } else if (frame.type === FrameType.GROUP_APPLY) {
        const {name, groupSeq} = decodeGroupApply(frame.payload)
        const record = await readGroupRecord(m.root, name, groupSeq)
        const self = await memberPath(m.root, m.replica)
        if (!record?.members.some((x) => x.path === self && x.seq === m.seq))
          throw new StateError('GROUP_NOT_COMMITTED', `group ${name} point ${groupSeq} does not name ${self} at sequence ${m.seq}; its bundle is not applied`)
        // The crash test's other members wait, so the first one is applied alone when the receiver dies.
        if (process.env.VDREP_TEST_GROUP_CRASH === 'after-first-apply' && record.members[0].path !== self) await new Promise((r) => setTimeout(r, 5000))
        await promoteHeld(m.replica)
        promoted = true
        return name
      } else throw new ProtocolError('FRAME_UNEXPECTED', `expected GROUP_COMMIT or GROUP_APPLY, got frame type ${frame.type}`)
    }
  } finally {
    // Not told to apply (the client went away, or a frame was refused): the record decides.
    if (!promoted) await settleHeld(m.root, m.replica, log).catch((err: Error) => log(`${m.replica}: held bundle not settled: ${err.message}`))
  }
}

/**
 * VDREP_TEST_GROUP_CRASH names a point where the receiver kills itself (kill -9) for the crash
 * tests (test/integration/group-commit.test.ts): `before-record` (every member held, no group
 * record yet) or `after-first-apply` (the record written, its first member applied and recorded,
 * the others made to wait before they apply).
 */
export function groupCrashPoint(at: 'before-record' | 'after-first-apply'): void {
  if (process.env.VDREP_TEST_GROUP_CRASH === at) process.kill(process.pid, 'SIGKILL')
}

/** Every member named must be held here at its sequence for its replica; then the record is the commit point. */
async function commitGroup(self: HeldMember, c: GroupCommit): Promise<number> {
  const members: GroupMember[] = []
  const seen = new Set<string>()
  for (const x of c.members) {
    const replica = await resolveReplicaPath(self.root, x.path)
    const rel = await memberPath(self.root, replica)
    if (seen.has(rel)) throw new ProtocolError('FRAME_MALFORMED', `GROUP_COMMIT names ${rel} twice`)
    seen.add(rel)
    const notHeld = (why: string) => new StateError('GROUP_MEMBER_NOT_HELD', `group ${c.name}: member ${rel}: ${why}; nothing of the group is applied`)
    const held = heldJournalPathFor(replica)
    if (!(await fs.lstat(held).catch(() => undefined))?.isFile()) throw notHeld('no held bundle')
    const {header} = await readJournal(held).catch(() => {
      throw notHeld('its held bundle is incomplete')
    })
    if (header.seq !== x.seq || !header.replicaId.equals(x.replicaId)) throw notHeld(`the held bundle is sequence ${header.seq}, not ${x.seq}`)
    const {state} = await readReplicaState(replica)
    if (!state || state.lastSeq + 1 !== x.seq) throw notHeld(`the replica is at sequence ${state?.lastSeq ?? 'none'}`)
    members.push({...x, path: rel})
  }
  if (!seen.has(await memberPath(self.root, self.replica)))
    throw new ProtocolError('FRAME_MALFORMED', 'GROUP_COMMIT does not name the member whose session it came on')
  groupCrashPoint('before-record')
  return (await writeGroupRecord(self.root, {name: c.name, committedMs: Date.now(), members})).groupSeq
}
