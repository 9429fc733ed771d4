// The record of an `export --group --to DIR` in its folder (`DIR/.vdrep-export-group.json`), so
// a run cut short (an error, a kill, a full disk) is finished by running it again: the members
// copied already are kept, the rest copied. Each member is named "copying" before its copy
// starts and "done" after; a copy appears only complete (copy-point.ts), so a file present for
// a member named in either state is that member's finished copy. A folder holding another
// group, root or group point is refused: never a mix of two points in one restore.
import fs from 'node:fs/promises'
import path from 'node:path'
import {UsageError} from '../errors.js'
import {writeFileAtomic} from '../util/fs-atomic.js'

export const GROUP_EXPORT_MANIFEST = '.vdrep-export-group.json'
const VERSION = 1

export interface GroupExportManifest {
  version: number
  group: string
  /** The receiver's root, resolved: the same group name under another root is another group. */
  root: string
  groupSeq: number
  /** Member path under the root → its copy's state, and the member's sequence at the point. */
  members: Record<string, {seq: number; state: 'copying' | 'done'}>
}

function parse(text: string, file: string): GroupExportManifest {
  const bad = () =>
    new UsageError('EXPORT_TARGET_EXISTS', `${file} is not a group export's record vdrep can read; the folder was left alone`, {hint: 'name a new folder'})
  let m: GroupExportManifest
  try {
    m = JSON.parse(text) as GroupExportManifest
  } catch {
    throw bad()
  }
  const okMember = (x: unknown) =>
    typeof x === 'object' && x !== null && Number.isSafeInteger((x as {seq: unknown}).seq) && ['copying', 'done'].includes((x as {state: string}).state)
  if (
    m?.version !== VERSION ||
    typeof m.group !== 'string' ||
    typeof m.root !== 'string' ||
    !Number.isSafeInteger(m.groupSeq) ||
    typeof m.members !== 'object' ||
    m.members === null ||
    !Object.values(m.members).every(okMember)
  )
    throw bad()
  return m
}

/**
 * The folder's record for this export: a new one for a folder without it (which must then hold
 * none of the members' files), or the one a run cut short left, when it is of this same point.
 */
export async function openGroupManifest(
  toDir: string,
  want: Omit<GroupExportManifest, 'version' | 'members'>,
  memberPaths: string[],
): Promise<GroupExportManifest> {
  const file = path.join(toDir, GROUP_EXPORT_MANIFEST)
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined
    throw err
  })
  if (text === undefined) {
    // The record is saved before the first copy, and a member it names "copying" whose file is
    // there counts as copied (below): a file of this folder from elsewhere (an earlier export)
    // would be taken for this point's copy by the run that follows a refusal.
    for (const rel of memberPaths)
      if ((await fs.lstat(path.join(toDir, rel)).catch(() => undefined))?.isFile())
        throw new UsageError('EXPORT_TARGET_EXISTS', `${path.join(toDir, rel)} exists, and ${toDir} holds no group export's record; nothing was copied`, {
          hint: 'name a new folder',
        })
    return {version: VERSION, ...want, members: {}}
  }
  const m = parse(text, file)
  if (m.group !== want.group || m.root !== want.root || m.groupSeq !== want.groupSeq)
    throw new UsageError(
      'EXPORT_TARGET_EXISTS',
      `${toDir} holds an export of group ${m.group} at group point ${m.groupSeq} (root ${m.root}), not of group ${want.group} at ${want.groupSeq} (root ${want.root}); nothing was copied`,
      {hint: m.group === want.group && m.root === want.root ? `finish it with --at ${m.groupSeq}, or name a new folder` : 'name a new folder'},
    )
  for (const [rel, x] of Object.entries(m.members))
    if (!memberPaths.includes(rel))
      throw new UsageError('EXPORT_TARGET_EXISTS', `${file} names ${rel}, which is no member of that group point; the folder was left alone`)
    else if (x.state === 'copying' && (await fs.lstat(path.join(toDir, rel)).catch(() => undefined))?.isFile()) x.state = 'done'
  return m
}

export async function saveGroupManifest(toDir: string, m: GroupExportManifest): Promise<void> {
  await writeFileAtomic(path.join(toDir, GROUP_EXPORT_MANIFEST), Buffer.from(`${JSON.stringify(m, null, 2)}\n`), 0o644)
}
