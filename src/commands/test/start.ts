import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../../cli/base-command.js'
import {untilSignal} from '../../cli/until-signal.js'
import {replicaFromArg} from '../../core/points/settings.js'
import {TestView, type TestStarted, type TestStopped} from '../../core/test-view/session.js'
import {formatBytes, formatDuration, parseSize} from '../../core/util/units.js'

export type TestStartResult = TestStarted & {stopped: TestStopped}

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
  ]
  static override args = {replica: Args.string({description: 'the replica file (under --root when given)', required: true})}
  static override flags = {
    root: Flags.string({description: 'resolve the replica under this root, as `vdrep serve --root` does'}),
    at: Flags.string({
      description: "the point: a sequence (see `vdrep points`), 'latest' (default), a date (the newest point at or before it) or -DURATION (-90m)",
    }),
    nbd: Flags.string({description: 'serve the view here: unix:PATH or 127.0.0.1:PORT; repeatable', multiple: true, required: true}),
    cap: Flags.string({description: 'most bytes the side file may hold (default: 10% of the disk, at least 1 GiB)'}),
  }

  async run(): Promise<TestStartResult> {
    const {args, flags} = await this.parse(TestStart)
    this.setGlobals(flags)
    const replica = await replicaFromArg(args.replica, flags.root)
    const capBytes = flags.cap === undefined ? undefined : parseSize(flags.cap, '--cap')
    const signalled = untilSignal(
      () => this.notice('stopping the test: finishing the requests in flight'),
      () => this.notice('still stopping; send the signal once more to quit at once (the side file is then removed by the next start or stop)'),
    )
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
}
