import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../../cli/base-command.js'
import {replicaFromArg} from '../../core/points/settings.js'
import {describeTest} from '../../core/test-view/record.js'
import {stopTest, type TestStopResult} from '../../core/test-view/stop.js'

export default class TestStop extends BaseCommand {
  static override summary = 'End the test boot of a replica: its side file is discarded and the test recorded.'
  static override description =
    'Run on the replica host, from any shell: stops the `vdrep test start` process of this replica and waits for it to end. ' +
    'A side file left by a test that was killed is removed (the command then exits 1: no test was running).'
  static override examples = ['<%= config.bin %> test stop /srv/replicas/web.img', '<%= config.bin %> test stop web.img --root /srv/replicas --json']
  static override args = {replica: Args.string({description: 'the replica file (under --root when given)', required: true})}
  static override flags = {
    root: Flags.string({description: 'resolve the replica under this root, as `vdrep serve --root` does'}),
  }

  async run(): Promise<TestStopResult> {
    const {args, flags} = await this.parse(TestStop)
    this.setGlobals(flags)
    const replica = await replicaFromArg(args.replica, flags.root)
    const r = await stopTest(replica)
    this.say(
      `stopped the test of point ${r.info.seq} of ${r.replica} (pid ${r.info.pid})` +
        (r.record ? `: tested ${describeTest(r.record)}, recorded` : '; it was not recorded (see its output)'),
    )
    return r
  }
}
