import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {timeoutFlag, timeoutMs} from '../cli/timeout-flag.js'
import {stateDirFlag} from '../cli/state-dir-flag.js'
import {createPhaseDisplay} from '../cli/phase-display.js'
import {VerifyError} from '../core/errors.js'
import {exitCodeOf} from '../core/errors/exit.js'
import {verify, type VerifyResult} from '../core/verify/verify.js'
import {renderRanges} from '../cli/render-ranges.js'
import {formatBytes} from '../core/util/units.js'

export default class Verify extends BaseCommand {
  static override summary = 'Compare the disk with its replica block by block, writing nothing on either host; list the ranges that differ.'
  static override description = `Both sides checksum every block: the disk here, the replica on the replica host through its receiver (over SSH, or in-process for a local target). Nothing is written: not the replica, its state, journal or restore points, nor the .psf. The disk lock is held while it runs (a push meanwhile exits 3), and the receiver holds the replica's lock for the session, so no commit lands mid-scan.

A difference is pending when the change record holds the block as not shipped yet (written since the last push, or in flight; with a running tracker its set is read before and after the comparison) or when the record is in doubt and the next push checks the disk against its block hash index first. Any other difference is unexpected and fails with exit 5 (VERIFY_FAILED): a replica block that differs from the last committed point (written outside vdrep: the count is shown), a source block written without the record knowing, or a difference no valid block hash index can explain.`
  static override examples = [
    '<%= config.bin %> verify /vm/web.img',
    '<%= config.bin %> verify /vm/web.img --json   # ranges as an array, exit 5 when the replica differs unexpectedly',
  ]
  static override args = {disk: Args.string({description: 'disk initialised with `vdrep init`', required: true})}
  static override flags = {
    'state-dir': stateDirFlag,
    'accept-new-host-key': Flags.boolean({description: 'trust and record the replica host key if it is not in known_hosts yet (never a changed one)'}),
    timeout: timeoutFlag,
  }

  async run(): Promise<VerifyResult> {
    const {args, flags} = await this.parse(Verify)
    this.setGlobals(flags)
    timeoutMs(flags.timeout) // a bad --timeout is a usage error before anything runs
    const display = this.interactive ? await createPhaseDisplay() : undefined
    let result: VerifyResult
    try {
      result = await verify(args.disk, {
        acceptNewHostKey: flags['accept-new-host-key'],
        timeoutMs: timeoutMs(flags.timeout),
        onProgress: display && ((done, total) => display.update({phase: 'compare', bytesTotal: total, bytesCompared: done, bytesSent: 0, bytesDurable: 0})),
        log: this.engineLog(display),
      })
    } finally {
      display?.stop()
    }
    for (const line of render(result)) this.say(line)
    if (result.verdict !== 'failed') return result
    const e = new VerifyError(
      `the replica differs from ${result.disk} in ${result.unexpected.blocks} block(s) (${formatBytes(result.unexpected.bytes)}) that no pending change explains`,
      {hint: failureHint(result)},
    )
    if (this.jsonEnabled()) {
      process.stdout.write(`${JSON.stringify({...result, ...e.toJSON()})}\n`)
      return this.exit(exitCodeOf(e))
    }
    throw e
  }
}

function render(r: VerifyResult): string[] {
  const head = `verify ${r.disk} -> ${r.target}: ${formatBytes(r.bytesCompared)} compared in ${r.seconds.toFixed(1)} s`
  const out: string[] = []
  if (r.equal) out.push(`${head}: equal`)
  else
    out.push(
      `${head}: ${r.unexpected.blocks} unexpected differing block(s) (${formatBytes(r.unexpected.bytes)}), ` +
        `${r.pending.blocks} pending (${formatBytes(r.pending.bytes)}, not pushed yet)`,
    )
  if (r.replicaChangedBlocks !== null && r.replicaChangedBlocks > 0)
    out.push(`the replica was written outside vdrep: ${r.replicaChangedBlocks} block(s) differ from the last committed point (sequence ${r.replicaSeq})`)
  else if (r.replicaAtLastCommit === true) out.push(`the replica is at the last committed point (sequence ${r.replicaSeq})`)
  else if (r.replicaSeq !== r.recordSeq) out.push(`the replica is at sequence ${r.replicaSeq}, the change record at ${r.recordSeq}`)
  if (r.replicaState !== 'complete') out.push(`the replica is ${r.replicaState === 'missing' ? 'missing' : 'incomplete (an interrupted full sync)'}`)
  out.push(...renderRanges('unexpected', r.unexpected), ...renderRanges('pending', r.pending))
  return out
}

function failureHint(r: VerifyResult): string {
  if (r.unexpected.ranges.some((x) => x.reason === 'replica-changed'))
    return 'the replica was written outside vdrep (a test boot, a failover by hand?): keep it, or overwrite it from this disk with `vdrep fullsync --discard-replica-changes`'
  if (r.unexpected.ranges.some((x) => x.reason === 'source-unrecorded'))
    return 'the disk was written without the change record knowing: run `vdrep fullsync` (only the differing blocks travel)'
  return 'run `vdrep fullsync` to make the replica equal again (only the differing blocks travel)'
}
