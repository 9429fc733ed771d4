// `vdrep fullsync --dry-run`: the full sync's comparison (the same hello refusals, the same
// per-block decision: fullsync/plan.ts decideAll), over a NO_WRITE session, reporting what a
// full sync would send now: the blocks that travel as DATA, the blocks zeroed by ZERO_RUN, and
// their ranges. Nothing is written on either host (look.ts); no tracker freeze is taken.
import {helloFlags, SEND, ZERO} from '../fullsync/plan.js'
import {ReplicaStateKind} from '../protocol/messages.js'
import {RangeList} from './ranges.js'
import {lookAtReplica, type LookOptions} from './look.js'
import type {RangeSet} from './verify.js'

export interface DryRunOptions extends LookOptions {
  takeOverReplica?: boolean
  discardReplicaChanges?: boolean
}

export interface DryRunResult {
  disk: string
  target: string
  dryRun: true
  bytesTotal: number
  blockSize: number
  /** Blocks that would travel as DATA, and their bytes (what `bytesSent` of the real run counts). */
  blocksToSend: number
  bytesToSend: number
  /** Blocks that would be zeroed on the replica (ZERO_RUN: no data travels). */
  blocksToZero: number
  /** Both kinds, as ranges (reason `send` or `zero`). */
  differing: RangeSet
  replicaState: 'missing' | 'incomplete' | 'complete'
  /** Where an interrupted full sync of this disk would resume (its blocks below are still compared). */
  resumeBlock: number
  seconds: number
}

export async function fullsyncDryRun(disk: string, opts: DryRunOptions = {}): Promise<DryRunResult> {
  const started = performance.now()
  let ranges: RangeList | undefined
  let toSend = 0
  let toZero = 0
  let sendBytes = 0
  let bs = 0
  let size = 0
  return lookAtReplica(disk, opts, {
    flags: helloFlags(opts),
    before: async (l) => {
      bs = l.record.header.blockSize
      size = l.diskSize
      ranges = new RangeList(bs, size)
    },
    onChunk: (c) => {
      for (let i = 0; i < c.count; i++) {
        if (c.action[i] === SEND) {
          toSend++
          sendBytes += Math.min(bs, size - (c.first + i) * bs)
          ranges?.add(c.first + i, 'send')
        } else if (c.action[i] === ZERO) {
          toZero++
          ranges?.add(c.first + i, 'zero')
        }
      }
    },
    after: async (l, outcome) => {
      const h = l.record.header
      const r = ranges as RangeList
      const state = outcome.hello.state
      return {
        disk,
        target: h.settings.target,
        dryRun: true,
        bytesTotal: l.diskSize,
        blockSize: h.blockSize,
        blocksToSend: toSend,
        bytesToSend: sendBytes,
        blocksToZero: toZero,
        differing: r.toJSON(),
        replicaState: state === ReplicaStateKind.MISSING ? 'missing' : state === ReplicaStateKind.COMPLETE ? 'complete' : 'incomplete',
        resumeBlock: state === ReplicaStateKind.INCOMPLETE ? outcome.hello.resumeBlock : 0,
        seconds: (performance.now() - started) / 1000,
      }
    },
  })
}
