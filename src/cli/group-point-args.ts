// `--group NAME` on the replica host's point commands (`export`, `test start`): the members come
// from the group's records under --root, so no replica is named, and --at is a group sequence.
import {UsageError} from '../core/errors.js'

export interface GroupPointArgs {
  root: string
  /** The group point asked for; undefined: the newest every member keeps. */
  groupSeq?: number
}

export function groupPointArgs(replica: string | undefined, flags: {root?: string; at?: string}): GroupPointArgs {
  if (replica !== undefined) throw new UsageError('USAGE', '--group names the members: give no replica beside it')
  if (flags.root === undefined) throw new UsageError('USAGE', '--group needs --root (the receiver root that holds the group records)')
  if (flags.at === undefined) return {root: flags.root}
  if (!/^\d{1,15}$/.test(flags.at))
    throw new UsageError('USAGE', `--at ${flags.at}: with --group, name a group point by its sequence (\`vdrep points --group\`)`)
  return {root: flags.root, groupSeq: Number(flags.at)}
}
