// `vdrep push --group NAME <disk>...`: one point in time across the disks of one VM, committed
// on the replica host as a unit (doc/group-commit.md). In order:
//   1. every member is locked and claimed (in path order, so two group pushes cannot deadlock),
//      checked (same group, a tracker, one receiver), connected, and says HELLO (GROUP flag);
//   2. the cut (cut.ts): every tracker holds its writes, then all are released;
//   3. every member ships its bundle, which the receiver journals and holds (JOURNALED);
//   4. GROUP_COMMIT: the receiver writes the group record, the commit point of the whole group;
//   5. GROUP_APPLY on every member: each is applied and recorded (COMMITTED).
// A failure before 4 leaves every replica as it was and hands every frozen set back; after 4,
// the receiver applies every member even if this process dies (held-journal.ts).
import {UsageError, asVdrepError} from '../errors.js'
import type {PushOptions, PushResult} from '../delta/push.js'
import {FrameType} from '../protocol/frame.js'
import {decodeGroupCommitted, encodeGroupApply, encodeGroupCommit} from '../protocol/group-messages.js'
import {canonicalDisk} from '../tracker/paths.js'
import {phaseEvent} from '../sync/progress.js'
import {checkGroupName} from './name.js'
import {DEFAULT_CUT_TIMEOUT_MS, DEFAULT_HOLD_LEASE_MS, takeGroupCut} from './cut.js'
import {GroupMember} from './member.js'
import {aroundGroupCut} from './hooks.js'
import {MAX_GROUP_MEMBERS} from './record.js'

/** A member as the caller names it (the command line now; the config file later). */
export interface DiskRef {
  disk: string
}

export interface GroupPushOptions extends PushOptions {
  /** How long a member's tracker may take to hold its writes (ms). */
  cutTimeoutMs?: number
  /** The longest a tracker holds its writes for the cut (ms). */
  holdLeaseMs?: number
  /** Called for each member once every member is claimed (status/last-attempt.ts: a killed group push is then known). */
  memberBegun?: (disk: string) => Promise<void>
}

export interface GroupPushResult {
  group: string
  /** The group point the receiver recorded. */
  groupSeq: number
  pointInTimeMs: number
  /** How long the VM's writes were held for the cut, at most, on any member. */
  heldMs: number
  members: PushResult[]
  seconds: number
}

export async function pushGroup(group: string, refs: DiskRef[], opts: GroupPushOptions = {}): Promise<GroupPushResult> {
  const started = performance.now()
  checkGroupName(group)
  if (refs.length === 0) throw new UsageError('BAD_ARGUMENT', 'push --group needs the disks of the group')
  if (refs.length > MAX_GROUP_MEMBERS) throw new UsageError('BAD_ARGUMENT', `a group has at most ${MAX_GROUP_MEMBERS} members, ${refs.length} were given`)
  const byPath = new Map<string, string>()
  for (const r of refs) {
    const c = await canonicalDisk(r.disk)
    if (byPath.has(c)) throw new UsageError('BAD_ARGUMENT', `${r.disk} is given twice`)
    byPath.set(c, r.disk)
  }
  const order = [...byPath.keys()].sort()
  const members: GroupMember[] = []
  let ok = false
  try {
    for (const c of order) members.push(await GroupMember.claim(byPath.get(c) as string, group))
    const keys = new Set(members.map((m) => m.receiverKey()))
    if (keys.size > 1)
      throw new UsageError(
        'GROUP_MEMBERS_SPLIT',
        `the members of ${group} replicate to ${keys.size} receivers (${members.map((m) => m.target).join(', ')}): one receiver writes the group record that commits them all, so they must share it (same host, port and root folder)`,
        {hint: 'move the replicas under one receiver (or one local folder), or push them apart (no common point in time)'},
      )
    for (const m of members) await opts.memberBegun?.(m.disk)
    opts.progress?.(phaseEvent('connect'))
    await allOrFirstError(members.map((m) => m.open(opts)))
    opts.progress?.(phaseEvent('freeze'))
    // A flag wins over each disk's settings (`vdrep config DISK pre-hook ...`), as for a lone push.
    const hooks = members.map((m) => {
      const s = m.claim.record.header.settings
      return {disk: m.disk, pre: opts.preHook ?? s.preHook, post: opts.postHook ?? s.postHook}
    })
    const cut = await aroundGroupCut(group, hooks, async () => {
      const c = await takeGroupCut(members, {timeoutMs: opts.cutTimeoutMs ?? DEFAULT_CUT_TIMEOUT_MS, leaseMs: opts.holdLeaseMs ?? DEFAULT_HOLD_LEASE_MS})
      // Each set joins its member at once, so a failure below (a post-hook's too) hands every one of them back.
      members.forEach((m, i) => (m.frozen = c.frozen[i]))
      return c
    })
    opts.log?.(`group ${group}: cut taken across ${members.length} disks; writes were held for ${cut.heldMs} ms at most`)
    opts.progress?.(
      phaseEvent(
        'send',
        cut.frozen.reduce((n, f) => n + f.bitmap.count(), 0),
      ),
    )
    await allOrFirstError(members.map((m, i) => m.ship(cut.frozen[i], opts)))
    opts.progress?.(phaseEvent('commit'))
    const lead = members[0]
    const commit = encodeGroupCommit({
      name: group,
      members: members.map((m) => ({path: m.conn!.replicaPath, seq: m.seq, replicaId: m.claim.record.header.replicaId, commitId: m.commitId})),
    })
    await lead.conn!.writer.send(FrameType.GROUP_COMMIT, commit)
    const groupSeq = decodeGroupCommitted((await lead.expect(FrameType.GROUP_COMMITTED, 'the group record')).payload)
    opts.log?.(`group ${group}: point ${groupSeq} committed on the replica host; applying the members`)
    await Promise.all(members.map((m) => m.conn!.writer.send(FrameType.GROUP_APPLY, encodeGroupApply({name: group, groupSeq}))))
    await allOrFirstError(members.map((m) => m.finish(cut.pointInTimeMs)))
    ok = true
    const seconds = (performance.now() - started) / 1000
    return {
      group,
      groupSeq,
      pointInTimeMs: cut.pointInTimeMs,
      heldMs: cut.heldMs,
      seconds,
      members: members.map((m) => ({
        disk: m.disk,
        target: m.target,
        mode: 'delta',
        seq: m.seq,
        blocks: m.stats?.blocks ?? 0,
        zeroBlocks: m.stats?.zeroBlocks ?? 0,
        bytesSent: m.stats?.bytesSent ?? 0,
        wireBytes: m.stats?.wireBytes,
        compression: m.compression(),
        seconds,
      })),
    }
  } finally {
    await Promise.all(members.map((m) => m.close(ok)))
  }
}

/** Wait for every member's step to end (none is left running when the members are closed), then throw the first failure. */
async function allOrFirstError(steps: Array<Promise<void>>): Promise<void> {
  const failed = (await Promise.allSettled(steps)).find((r) => r.status === 'rejected')
  if (failed) throw asVdrepError((failed as PromiseRejectedResult).reason)
}
