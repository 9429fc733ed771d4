// `vdrep export --group NAME --root DIR`: every member of a consistency group read at one group
// point (doc/group-commit.md), served read-only as exports of one NBD server (named by their
// paths under the root), or copied into a folder as sparse files under the same relative paths.
// Each copy appears only complete (copy-point.ts), so a run cut short leaves the members copied
// before it whole and the rest absent.
import fs from 'node:fs/promises'
import path from 'node:path'
import {UsageError} from '../errors.js'
import {isGroupName} from '../group/name.js'
import {readableGroupPoint} from '../group/points.js'
import {copyPoint, type CopiedPoint, type CopyProgress} from './copy-point.js'
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

export interface CopiedGroupPoint {
  group: string
  groupSeq: number
  copies: CopiedPoint[]
}

/** Copy every member at the group point into `toDir`, under its path relative to the root. */
export async function copyGroupPoint(
  root: string,
  group: string,
  toDir: string,
  opts: {groupSeq?: number; progress?: (member: string, p: CopyProgress) => void} = {},
): Promise<CopiedGroupPoint> {
  const g = await groupPointToRead(root, group, opts.groupSeq)
  const copies: CopiedPoint[] = []
  for (const p of g.points) {
    const to = path.join(toDir, p.exportName)
    await fs.mkdir(path.dirname(to), {recursive: true})
    copies.push(await copyPoint(p.replica, to, {at: String(p.seq), progress: (x) => opts.progress?.(p.exportName, x)}))
  }
  return {group, groupSeq: g.groupSeq, copies}
}
