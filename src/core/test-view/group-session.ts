// `vdrep test start --group NAME`: a test boot of a consistency group's point (doc/group-commit.md):
// every member's view at its sequence from one group record, all served by one NBD server, each
// member an export named by its path under the root (qemu opens each disk by export name over the
// one socket). Each member is locked, pinned and recorded as a lone test is (member.ts), so
// `vdrep test stop <member>` stops the whole group's test (they share the process).
import path from 'node:path'
import {UsageError} from '../errors.js'
import {isGroupName} from '../group/name.js'
import {readableGroupPoint} from '../group/points.js'
import type {NbdServer} from '../tracker/nbd/server.js'
import {TestMember, type TestStarted, type TestStopped} from './member.js'
import {serveMembers, type TestStartOptions} from './session.js'

export interface GroupTestOptions extends Omit<TestStartOptions, 'at'> {
  root: string
  group: string
  /** The group point (`vdrep points --group`); default the newest every member keeps. */
  groupSeq?: number
}

export class GroupTestView {
  private stopping: Promise<TestStopped[]> | null = null

  private constructor(
    readonly group: string,
    readonly groupSeq: number,
    readonly started: TestStarted[],
    private readonly members: TestMember[],
    private readonly server: NbdServer,
  ) {}

  static async start(o: GroupTestOptions): Promise<GroupTestView> {
    if (!isGroupName(o.group)) throw new UsageError('BAD_GROUP_NAME', `${JSON.stringify(o.group)} is not a group name`)
    const point = await readableGroupPoint(o.root, o.group, o.groupSeq)
    const members: TestMember[] = []
    try {
      for (const m of point.members) members.push(await TestMember.open(path.join(o.root, m.path), String(m.seq), m.path, o.capBytes))
      const {server, started} = await serveMembers(members, o)
      return new GroupTestView(o.group, point.groupSeq, started, members, server)
    } catch (err) {
      for (const m of members) await m.abort()
      throw err
    }
  }

  get connections(): number {
    return this.server.connectionCount
  }

  stop(): Promise<TestStopped[]> {
    this.stopping ??= this.server.close().then(async () => {
      const endedMs = Date.now()
      const out: TestStopped[] = []
      for (const m of this.members) out.push(await m.finish(endedMs))
      return out
    })
    return this.stopping
  }
}
