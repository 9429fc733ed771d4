// Where a receiver keeps its group records: `<root>/.vdrep-groups/<name>/<seq>.vdrep-group`,
// one file per committed group point, written whole (temp file, sync, rename, sync the
// folder) and read back before it counts. The records are also the group's restore points:
// each lists the member sequences that make one point in time (`vdrep points`).
import fs from 'node:fs/promises'
import path from 'node:path'
import {asVdrepError, StateError} from '../errors.js'
import {fsyncDir, writeFileAtomic} from '../util/fs-atomic.js'
import {decodeGroupRecord, encodeGroupRecord, type GroupMember, type GroupRecord} from './record.js'
import {isGroupName} from './name.js'

export const GROUPS_DIR = '.vdrep-groups'
const SUFFIX = '.vdrep-group'
/** A group record file's size cap (64 members of 4 KiB paths, and room). */
const MAX_RECORD_BYTES = 512 * 1024

export const groupDir = (root: string, name: string) => path.join(root, GROUPS_DIR, name)
export const recordFile = (root: string, name: string, seq: number) => path.join(groupDir(root, name), `${String(seq).padStart(16, '0')}${SUFFIX}`)

/** The sequences of a group's records, ascending (prune-records.ts drops the ones that cannot be restored). */
export async function sequences(root: string, name: string): Promise<number[]> {
  const names = await fs.readdir(groupDir(root, name)).catch(() => [] as string[])
  return names
    .filter((n) => /^\d{16}\.vdrep-group$/.test(n))
    .map((n) => Number(n.slice(0, 16)))
    .sort((a, b) => a - b)
}

/** Write the next record of `r.name` (its groupSeq chosen here); returns it as read back. */
export async function writeGroupRecord(root: string, r: Omit<GroupRecord, 'groupSeq'>): Promise<GroupRecord> {
  const dir = groupDir(root, r.name)
  await fs.mkdir(path.join(root, GROUPS_DIR), {recursive: true, mode: 0o700})
  const made = await fs.mkdir(dir, {mode: 0o700}).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST') return false
      throw err
    },
  )
  if (made) await fsyncDir(path.dirname(dir))
  const groupSeq = ((await sequences(root, r.name)).at(-1) ?? 0) + 1
  const record: GroupRecord = {...r, groupSeq}
  const file = recordFile(root, r.name, groupSeq)
  await writeFileAtomic(file, encodeGroupRecord(record))
  // Proved: the commit point is what was meant, or the group push fails before any apply.
  const back = decodeGroupRecord(await fs.readFile(file))
  if (back.groupSeq !== groupSeq || back.members.length !== r.members.length) throw new Error(`group record ${file} reads back differently`)
  return back
}

export async function readGroupRecord(root: string, name: string, seq: number): Promise<GroupRecord | null> {
  const file = recordFile(root, name, seq)
  const st = await fs.lstat(file).catch(() => undefined)
  if (!st?.isFile()) return null
  if (st.size > MAX_RECORD_BYTES)
    throw new StateError('GROUP_RECORD_CORRUPT', `group record ${file}: ${st.size} bytes is over the ${MAX_RECORD_BYTES}-byte cap`)
  return decodeGroupRecord(await fs.readFile(file))
}

/** Every readable record of every group (or of `only`), oldest first per group; unreadable ones are reported. */
export async function listGroupRecords(root: string, only?: string, onBad: (file: string, why: string) => void = () => {}): Promise<GroupRecord[]> {
  const names = only ? [only] : await fs.readdir(path.join(root, GROUPS_DIR)).catch(() => [] as string[])
  const out: GroupRecord[] = []
  for (const name of names.filter(isGroupName)) {
    for (const seq of await sequences(root, name)) {
      try {
        const r = await readGroupRecord(root, name, seq)
        if (r) out.push(r)
      } catch (err) {
        onBad(recordFile(root, name, seq), asVdrepError(err).message)
      }
    }
  }
  return out
}

/**
 * The group record that names this member at this sequence (and that `ours` accepts as naming
 * this replica, not an earlier one at the same path), or null: whether its held bundle was committed.
 */
export async function recordNaming(
  root: string,
  relPath: string,
  seq: number,
  ours: (r: GroupRecord, m: GroupMember) => boolean = () => true,
): Promise<GroupRecord | null> {
  for (const r of await listGroupRecords(root)) if (r.members.some((m) => m.path === relPath && m.seq === seq && ours(r, m))) return r
  return null
}
