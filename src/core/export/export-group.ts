// `vdrep export --group NAME --root DIR`: every member of a consistency group read at one group
// point (doc/group-commit.md), served read-only as exports of one NBD server (named by their
// paths under the root), or copied into a folder as sparse files under the same relative paths.
// Each copy appears only complete (copy-point.ts), and the folder keeps a record of the export
// (group-manifest.ts): a run cut short is finished by running it again, the members copied
// already kept.
import fs from 'node:fs/promises'
import path from 'node:path'
import {UsageError} from '../errors.js'
import {isGroupName} from '../group/name.js'
import {readableGroupPoint} from '../group/points.js'
import {copyPoint, type CopiedPoint, type CopyProgress} from './copy-point.js'
import {openGroupManifest, saveGroupManifest} from './group-manifest.js'
import type {PointToServe} from './serve-point.js'

export interface GroupPointToRead {
  group: string
  groupSeq: number
  points: PointToServe[]
}

export async function groupPointToRead(root: string, group: string, groupSeq?: number): Promise<GroupPointToRead> {
  if (!isGroupName(group)) throw new UsageError('BAD_GROUP_NAME', `${JSON.stringify(group)} is not a group name`)
  const point = await readableGroupPoint(root, group, groupSeq)
  return {
    group,
    groupSeq: point.groupSeq,
    points: point.members.map((m) => ({replica: path.join(root, m.path), seq: m.seq, exportName: m.path})),
  }
}

/** A member's copy kept from an earlier run cut short (not copied again by this one). */
export interface KeptCopy {
  replica: string
  seq: number
  to: string
  size: number
  kept: true
}

export interface CopiedGroupPoint {
  group: string
  groupSeq: number
  copies: Array<CopiedPoint | KeptCopy>
}

/** Copy every member at the group point into `toDir`, under its path relative to the root; a run cut short is finished. */
export async function copyGroupPoint(
  root: string,
  group: string,
  toDir: string,
  opts: {groupSeq?: number; progress?: (member: string, p: CopyProgress) => void} = {},
): Promise<CopiedGroupPoint> {
  const g = await groupPointToRead(root, group, opts.groupSeq)
  await fs.mkdir(toDir, {recursive: true})
  const manifest = await openGroupManifest(
    toDir,
    {group, root: await fs.realpath(root), groupSeq: g.groupSeq},
    g.points.map((p) => p.exportName),
  )
  const copies: CopiedGroupPoint['copies'] = []
  for (const p of g.points) {
    const to = path.join(toDir, p.exportName)
    const was = manifest.members[p.exportName]
    if (was?.state === 'done' && was.seq === p.seq) {
      copies.push({replica: p.replica, seq: p.seq, to, size: (await fs.stat(to)).size, kept: true})
      continue
    }
    await fs.mkdir(path.dirname(to), {recursive: true})
    manifest.members[p.exportName] = {seq: p.seq, state: 'copying'}
    await saveGroupManifest(toDir, manifest)
    const copied = await copyPoint(p.replica, to, {at: String(p.seq), progress: (x) => opts.progress?.(p.exportName, x)})
    // Checked again once copied: a copy pins its replica's generation only when it opens the point,
    // and a member full-synced since the point was chosen holds another disk under the same
    // sequence (group/points.ts). Such a copy is no copy of the point: removed, and the run fails.
    await readableGroupPoint(root, group, g.groupSeq).catch(async (err: Error) => {
      await fs.rm(to, {force: true})
      throw err
    })
    copies.push(copied)
    manifest.members[p.exportName] = {seq: p.seq, state: 'done'}
    await saveGroupManifest(toDir, manifest)
  }
  return {group, groupSeq: g.groupSeq, copies}
}
