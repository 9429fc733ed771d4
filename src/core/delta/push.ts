// `vdrep push`: ship the blocks changed since the last sync as one bundle the receiver
// commits as a unit; fall back to a full sync (and say why) whenever the change record or
// the replica cannot be vouched for. Cost follows the changed blocks, never the disk size.
import {FullSyncNeededError, UsageError} from '../errors.js'
import {SourceDisk} from '../disk/source-disk.js'
import type {DiskStamp} from '../psf/disk-stamp.js'
import {settledStat} from '../psf/disk-stamp.js'
import {claimRecord} from '../change-record/claim.js'
import {canVerify, curedByVerification, DoubtKind, needsFullSyncFlag} from '../change-record/doubt.js'
import {verifyOwnedRecord} from '../verification/verify-record.js'
import {checkOpenedDisk} from '../change-record/identity.js'
import {pushIsDue} from '../sync/due.js'
import {fullsync, type FullsyncOptions, type FullsyncResult} from '../fullsync/client.js'
import {acquireDiskLock} from '../locks/index.js'
import {phaseEvent} from '../sync/progress.js'
import type {CompressionReport} from '../compress/negotiate.js'

import {dropConnection, startConnecting} from './connecting.js'
import {pushDelta} from './push-delta.js'

export interface PushOptions extends FullsyncOptions {
  noFallback?: boolean
  ifDue?: boolean
  preHook?: string
  postHook?: string
  /** The last push before a planned failover (doc/failover.md): no tracker may run, the commit is marked final on both sides. */
  final?: boolean
}

export interface PushPhases {
  startupMs: number
  connectMs: number
  readMs: number
  sendMs: number
  journalMs: number
  applyMs: number
}

export interface PushResult {
  disk: string
  target: string
  mode: 'delta' | 'fullsync' | 'skipped'
  reason?: string
  seq?: number
  blocks: number
  zeroBlocks: number
  bytesSent: number
  /** Delta: bytes of DATA / DATA_Z payloads on the wire. */
  wireBytes?: number
  compression?: CompressionReport
  seconds: number
  phases?: PushPhases
  fullsync?: FullsyncResult
  /** The local verification this push ran first (no tracker, a record in doubt). */
  verified?: LocalVerification
  /** A final push: the source handed over (doc/failover.md). */
  final?: boolean
}

export interface LocalVerification {
  /** Why the record had to be checked. */
  reasons: string
  blocksScanned: number
  /** Blocks that differed from the index and were not marked: they are in this push. */
  blocksNewlyMarked: number
  seconds: number
}

export async function push(disk: string, opts: PushOptions = {}): Promise<PushResult> {
  const startupMs = performance.now()
  const started = performance.now()
  const lock = await acquireDiskLock(disk, 'push')
  try {
    // Why a delta cannot be sent, and whether it is a source that shrank (decided on the kind).
    let reason: string
    let shrank = false
    let verified: LocalVerification | undefined
    let target: string
    const claim = await claimRecord(disk, 'push', {lockHeld: true})
    try {
      const {record, tracker} = claim
      target = record.header.settings.target
      // A handover while a tracker runs could be followed by a write the replica never gets.
      if (opts.final && tracker)
        throw new UsageError('FINAL_TRACKER_RUNNING', `a tracker runs for ${disk}: a write after the final push would be lost at the failover`, {
          hint: 'shut the VM down, stop `vdrep track` (SIGTERM), then run `vdrep push --final` again',
        })
      if (claim.bound) opts.log?.(claim.bound, 'notice')
      if (opts.ifDue && !pushIsDue(record.header.lastSyncMs, record.header.settings.rpoSeconds)) {
        return {disk, target, mode: 'skipped', reason: 'not due yet', blocks: 0, zeroBlocks: 0, bytesSent: 0, seconds: 0}
      }
      await opts.begun?.()
      // The SSH login (the largest fixed cost of a push) runs while the local record is checked.
      opts.progress?.(phaseEvent('connect'))
      const connecting = startConnecting(record.header, opts)
      let handedOver = false
      try {
        const source = await SourceDisk.open(disk, opts.sourceReadFault)
        try {
          checkOpenedDisk(record, disk, await source.stat(), source.size, {trackerRunning: tracker !== null})
          // Only a push without a tracker keeps this stat as its clean point (a tracked disk is
          // written all the time: waiting for its mtime to settle would only cost time).
          const st = tracker ? await source.stat() : await settledStat(() => source.stat())
          const stamp: DiskStamp = {size: source.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs}
          const ctx = {trackerRunning: tracker !== null}
          let doubts = record.doubts(stamp, ctx)
          if (
            claim.owned &&
            doubts.some((d) => d.kind === DoubtKind.SOURCE_GREW) &&
            !doubts.some((d) => d.kind === DoubtKind.SOURCE_SHRANK || needsFullSyncFlag(d))
          ) {
            await claim.owned.grow(source.size)
            doubts = record.doubts(stamp, ctx)
          }
          // Doubt about the source is resolved by a local verification, not by a full sync: the
          // running tracker runs it behind its export (its freeze waits for it), or this push runs
          // it on the record it owns, before anything is frozen.
          if (doubts.length > 0 && doubts.every(curedByVerification) && canVerify(record.header)) {
            const why = doubts.map((d) => d.message).join('; ')
            if (tracker) {
              opts.log?.(`the tracker checks ${disk} against the block hash index (${why}); this push waits for it`, 'notice')
            } else if (claim.owned) {
              opts.log?.(`checking every block of ${disk} against the block hash index of the last sync first (a local read): ${why}`, 'notice')
              opts.progress?.(phaseEvent('verify'))
              const v = await verifyOwnedRecord(claim.owned, source, disk, stamp, {log: (_level, line) => opts.log?.(line, 'notice')})
              opts.log?.(
                `checked ${v.blocksScanned} blocks in ${v.seconds.toFixed(1)} s: ${v.blocksNewlyMarked} changed and not yet marked, now marked`,
                'notice',
              )
              verified = {reasons: why, blocksScanned: v.blocksScanned, blocksNewlyMarked: v.blocksNewlyMarked, seconds: v.seconds}
            }
            if (tracker || claim.owned) doubts = []
          }
          const doubt = doubts[0] ?? null
          if (!doubt) {
            handedOver = true
            const r = await pushDelta(disk, claim, source, connecting, opts, startupMs, started, tracker ? undefined : stamp)
            if (verified) r.verified = verified
            if (r.mode !== 'fullsync') return r
            reason = r.reason ?? 'the replica cannot take a delta'
          } else {
            reason = doubt.message
            shrank = doubt.kind === DoubtKind.SOURCE_SHRANK
          }
        } finally {
          await source.close()
        }
      } finally {
        if (!handedOver) await dropConnection(connecting)
      }
    } finally {
      await claim.release()
    }
    // A shrunk source is bad input (DESIGN: the contract), not a reason to cut the only second
    // copy from cron: refuse unless the user says --truncate-replica.
    if (shrank && !opts.truncateReplica) {
      throw new UsageError('SOURCE_SHRANK', `${reason}; nothing was sent`, {
        hint: 'if the disk was shrunk on purpose, run `vdrep push --truncate-replica` (a full sync that cuts the replica)',
      })
    }
    if (opts.final)
      throw new FullSyncNeededError(`a final push must be a delta, and a full sync is needed: ${reason}`, {
        hint: 'run `vdrep fullsync` (or push), then `vdrep push --final`',
      })
    if (opts.noFallback) throw new FullSyncNeededError(`a full sync is needed: ${reason}`, {hint: 'run `vdrep fullsync` (or push without --no-fallback)'})
    opts.log?.(`falling back to a full sync: ${reason}`, 'notice')
    const result = await fullsync(disk, {...opts, truncateReplica: opts.truncateReplica || shrank, lockHeld: true})
    return {
      disk,
      target,
      mode: 'fullsync',
      reason,
      blocks: 0,
      zeroBlocks: 0,
      bytesSent: result.bytesSent,
      seconds: (performance.now() - started) / 1000,
      fullsync: result,
    }
  } finally {
    await lock.release()
  }
}
