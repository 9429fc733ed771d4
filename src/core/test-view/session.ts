// `vdrep test start`: a test boot of a restore point. The point is pinned and read through the
// point reader (its view stays put while pushes commit); the guest's writes go to a side file in
// `<replica>.vdrep-test/` (overlay-backend.ts), bounded by a cap; the replica, its state and its
// points are never written by the test, so replication goes on and never needs a full sync.
// Served over NBD like `vdrep export` (a 0600 unix socket, or loopback TCP for our uid only).
//
// It runs until stop(): the command calls it on SIGTERM/SIGINT, which is what `vdrep test stop`
// sends (test-view/stop.ts). stop() ends the NBD service, unpins the point, records the test in
// the replica's state, and discards the folder. A test killed with -9 leaves the folder; the
// next start (or stop) finds its lock free and removes it.
import path from 'node:path'
import {describeAddress, ownPeers} from '../export/serve-point.js'
import {NbdServer} from '../tracker/nbd/server.js'
import {TestMember, type TestStarted, type TestStopped} from './member.js'

export {defaultCap, type TestStarted, type TestStopped} from './member.js'

export interface TestStartOptions {
  at?: string
  listen: string[]
  /** Cap of the side file in bytes; default defaultCap(disk size). */
  capBytes?: number
  log?: (line: string) => void
  /** One line per connection refused (another user's peer on loopback TCP); default: log. */
  onRefused?: (line: string) => void
}

/** One NBD server over the members' views, listening where asked; the members' test.json say so. */
export async function serveMembers(members: TestMember[], opts: TestStartOptions): Promise<{server: NbdServer; started: TestStarted[]}> {
  const server = new NbdServer(
    members.map((m) => m.backend),
    {unixMode: 0o600, allowedPeerUids: ownPeers(), logger: opts.log, onRefused: opts.onRefused},
  )
  try {
    const nbd: string[] = []
    for (const spec of opts.listen) nbd.push(describeAddress(await server.listen(spec)))
    const started: TestStarted[] = []
    for (const m of members) started.push(await m.publish(nbd))
    return {server, started}
  } catch (err) {
    await server.close()
    throw err
  }
}

export class TestView {
  private stopping: Promise<TestStopped> | null = null

  private constructor(
    readonly started: TestStarted,
    private readonly member: TestMember,
    private readonly server: NbdServer,
  ) {}

  static async start(replica: string, opts: TestStartOptions): Promise<TestView> {
    const member = await TestMember.open(replica, opts.at, path.basename(replica), opts.capBytes)
    try {
      const {server, started} = await serveMembers([member], opts)
      return new TestView(started[0], member, server)
    } catch (err) {
      await member.abort()
      throw err
    }
  }

  get connections(): number {
    return this.server.connectionCount
  }

  stop(): Promise<TestStopped> {
    this.stopping ??= this.server.close().then(() => this.member.finish(Date.now()))
    return this.stopping
  }
}
