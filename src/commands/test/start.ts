import {Args, Flags, type Interfaces} from '@oclif/core'
import {BaseCommand} from '../../cli/base-command.js'
import {groupPointArgs} from '../../cli/group-point-args.js'
import {untilSignal} from '../../cli/until-signal.js'
import {UsageError} from '../../core/errors.js'
import {replicaFromArg} from '../../core/points/settings.js'
import {GroupTestView} from '../../core/test-view/group-session.js'
import {TestView, type TestStarted, type TestStopped} from '../../core/test-view/session.js'
import {formatBytes, formatDuration, parseSize} from '../../core/util/units.js'

export type TestStartResult = TestStarted & {stopped: TestStopped}
export type GroupTestStartResult = {group: string; groupSeq: number; members: TestStarted[]; stopped: TestStopped[]}

export default class TestStart extends BaseCommand {
  static override summary = 'Boot-test a restore point: serve a writable copy-on-write view of it over NBD while replication goes on.'
  static override description =
    'Run on the replica host; runs in the foreground until SIGTERM or SIGINT, or `vdrep test stop <replica>` from another shell. ' +
    'The guest writes into a side file in <replica>.vdrep-test/, bounded by --cap (a write past it fails with ENOSPC); the replica and its points are never written, ' +
    'so pushes keep committing deltas and the view stays on its point. At the stop the side file is discarded and the test is recorded in the replica state (shown by `vdrep points`). ' +
    'A unix socket is made mode 0600; on loopback TCP only your uid and root are served.'
  static override examples = [
    '<%= config.bin %> test start /srv/replicas/web.img --nbd unix:/run/web-test.nbd',
    '<%= config.bin %> test start web.img --root /srv/replicas --at 41 --nbd unix:/run/web-test.nbd --cap 4G',
    'qemu-system-x86_64 -m 2G -drive file=nbd+unix:///web.img?socket=/run/web-test.nbd,format=raw,cache=none ...',
    '<%= config.bin %> test stop /srv/replicas/web.img',
    '<%= config.bin %> test start --group db --root /srv/replicas --nbd unix:/run/db-test.nbd',
  ]
  static override args = {replica: Args.string({description: 'the replica file (under --root when given); none with --group'})}
  static override flags = {
    root: Flags.string({description: 'resolve the replica under this root, as `vdrep serve --root` does'}),
    at: Flags.string({
      description: "the point: a sequence (see `vdrep points`), 'latest' (default), a date (the newest point at or before it) or -DURATION (-90m)",
    }),
    nbd: Flags.string({description: 'serve the view here: unix:PATH or 127.0.0.1:PORT; repeatable', multiple: true, required: true}),
    cap: Flags.string({description: 'most bytes the side file may hold (default: 10% of the disk, at least 1 GiB)'}),
    group: Flags.string({
      description:
        'test every member of this consistency group at one group point (--at: its group sequence; default the newest every member keeps): one NBD server, each member an export named by its path under --root',
    }),
  }

  async run(): Promise<TestStartResult | GroupTestStartResult> {
    const {args, flags} = await this.parse(TestStart)
    this.setGlobals(flags)
    if (flags.group !== undefined) return this.group(flags.group, args.replica, flags)
    if (args.replica === undefined) throw new UsageError('USAGE', 'name the replica to test (or --group NAME --root DIR)')
    const replica = await replicaFromArg(args.replica, flags.root)
    const capBytes = flags.cap === undefined ? undefined : parseSize(flags.cap, '--cap')
    const signalled = this.untilStopped()
    const view = await TestView.start(replica, {
      at: flags.at,
      listen: flags.nbd,
      capBytes,
      log: (line) => this.detail(line),
      onRefused: (line) => this.logToStderr(`vdrep: warning: ${line}`),
    })
    const s = view.started
    if (s.staleRemoved) this.notice(`removed the side file of a test that was killed before it stopped`)
    this.say(
      `testing point ${s.seq} (${s.time}) of ${s.replica}: writable NBD export "${s.exportName}" on ${s.nbd.join(' and ')} (${formatBytes(s.size)}); ` +
        `writes go to a side file capped at ${formatBytes(s.capBytes)}; the replica is not written`,
    )
    await signalled
    const stopped = await view.stop()
    this.say(
      `stopped the test of point ${stopped.seq} of ${stopped.replica} after ${formatDuration(Math.max(1, Math.round(stopped.seconds)))}: ` +
        `${stopped.writes} writes (${formatBytes(stopped.bytesWritten)}) discarded` +
        (stopped.recorded ? '; recorded in the replica state' : `; NOT recorded: ${stopped.notRecorded ?? 'unknown'}`),
    )
    return {...s, stopped}
  }

  private untilStopped(): Promise<unknown> {
    return untilSignal(
      () => this.notice('stopping the test: finishing the requests in flight'),
      () => this.notice('still stopping; send the signal once more to quit at once (the side file is then removed by the next start or stop)'),
    )
  }

  private async group(group: string, replica: string | undefined, flags: Interfaces.InferredFlags<typeof TestStart.flags>): Promise<GroupTestStartResult> {
    const {root, groupSeq} = groupPointArgs(replica, flags)
    const signalled = this.untilStopped()
    const view = await GroupTestView.start({
      root,
      group,
      groupSeq,
      listen: flags.nbd,
      capBytes: flags.cap === undefined ? undefined : parseSize(flags.cap, '--cap'),
      log: (line) => this.detail(line),
      onRefused: (line) => this.logToStderr(`vdrep: warning: ${line}`),
    })
    for (const s of view.started) this.say(`testing ${s.replica} at point ${s.seq}: NBD export "${s.exportName}" (${formatBytes(s.size)})`)
    this.say(`testing group ${group} at group point ${view.groupSeq} on ${view.started[0].nbd.join(' and ')}; the replicas are not written`)
    await signalled
    const stopped = await view.stop()
    const unrecorded = stopped.filter((x) => !x.recorded).map((x) => x.replica)
    this.say(
      `stopped the test of group ${group} at point ${view.groupSeq}: ${stopped.reduce((n, x) => n + x.writes, 0)} writes discarded` +
        (unrecorded.length ? `; NOT recorded for ${unrecorded.join(', ')}` : '; recorded in each replica state'),
    )
    return {group, groupSeq: view.groupSeq, members: view.started, stopped}
  }
}
