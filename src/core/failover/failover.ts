// `vdrep failover <replica>` on the replica host (doc/failover.md): promote the replica to a
// source. Under the replica's lock, after any journal is settled: the checks (a consistent,
// complete replica; planned only after a final push; unplanned only with --force, saying how
// much may be lost), then the promotion is recorded (fenced from that moment, before any
// write), then the rollback to `--at`, then the promoted disk's own change record. Every step
// can be cut by a kill -9 and resumed by running the command again.
import crypto from 'node:crypto'
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import {StateError, UsageError} from '../errors.js'
import {acquireReplica} from '../locks/index.js'
import {recoverJournal} from '../delta/apply.js'
import {heldJournalPathFor} from '../group/held-journal.js'
import {Bitmap} from '../psf/bitmap.js'
import {psfPathFor} from '../psf/psf-file.js'
import {readReplicaState, writeReplicaState, type PromotedInfo, type ReplicaState} from '../receiver/replica-state.js'
import {createPromotedRecord, promotedRecordIn} from './promoted-record.js'
import {planRollback} from './rollback.js'
import type {ReplicationSettings} from '../psf/settings.js'

export interface FailoverOptions {
  /** Roll back to this kept point first. */
  at?: number
  /** The primary did a final push: refuse unless the last commit is that push. */
  planned?: boolean
  /** Fail over although the last commit was not final (writes since it may be lost), or the replica is diverged. */
  force?: boolean
  /** Where the promoted disk will replicate to (the old primary), for `vdrep reprotect`. */
  to?: string
  /** How to reach it (ssh settings, ports). */
  settings?: Partial<ReplicationSettings>
  now?: () => number
  log?: (line: string) => void
  /**
   * Under the replica's lock, before a replica not yet promoted is touched: throws to refuse
   * (a group failover's member must still hold the group point it was checked at).
   */
  check?: (state: ReplicaState) => void
}

export interface FailoverResult {
  replica: string
  psf: string
  epoch: number
  atSeq: number
  rolledBackTo?: number
  undoneBlocks: number
  planned: boolean
  /** Seconds from the last commit to the failover: writes the primary made then may be lost. */
  lossWindowSeconds: number
  /** The promotion had been made before (this run finished or confirmed it). */
  resumed: boolean
  newReplicaId: string
  oldReplicaId: string
}

/** What a failover refuses before it changes anything (also checked for every member of a group first). */
export function checkFailoverFit(
  state: ReplicaState | undefined,
  error: StateError | undefined,
  replica: string,
  o: Pick<FailoverOptions, 'planned' | 'force'>,
  now: number,
): ReplicaState {
  if (error) throw error
  if (!state) throw new UsageError('FAILOVER_NOT_REPLICA', `${replica} has no replica state (${replica}.vdrep): it is not a replica vdrep wrote`)
  if (!state.complete)
    throw new UsageError('FAILOVER_INCOMPLETE', `${replica} is incomplete (a full sync did not finish): it is no consistent point; nothing was changed`, {
      hint: 'finish the full sync from the primary first; if the primary is lost, its data is not here',
    })
  if ((state.diverged || state.doubt) && !o.force)
    throw new UsageError('FAILOVER_INCOMPLETE', `${replica} is diverged or in doubt (${state.doubt ?? 'written outside vdrep'}); nothing was changed`, {
      hint: 'pass --force to fail over to it as it is',
    })
  const last = state.commitMs ?? state.updatedMs
  const lossS = Math.max(0, Math.round((now - last) / 1000))
  const final = state.final?.seq === state.lastSeq
  if (o.planned && !final)
    throw new UsageError('FAILOVER_NOT_FINAL', `the last commit of ${replica} (sequence ${state.lastSeq}) was not a final push; nothing was changed`, {
      hint: `on the primary: shut the VM down, stop its tracker, run \`vdrep push <disk> --final\`, then fail over again; if the primary is lost, \`vdrep failover --force\` (writes of the last ${lossS} s may be lost)`,
    })
  if (!final && !o.force && !o.planned)
    throw new UsageError(
      'FAILOVER_UNPLANNED',
      `the last commit of ${replica} (sequence ${state.lastSeq}, ${new Date(last).toISOString()}) was not a final push: the primary's writes of the last ${lossS} s may not be here; nothing was changed`,
      {hint: 'for a planned failover run `vdrep push <disk> --final` on the primary, then `vdrep failover --planned`; if the primary is lost, `--force`'},
    )
  return state
}

export async function failover(replica: string, o: FailoverOptions = {}): Promise<FailoverResult> {
  const now = (o.now ?? Date.now)()
  const log = o.log ?? (() => {})
  const release = await acquireReplica(replica, 'another vdrep process (vdrep serve applying a push, a full sync, another failover)')
  try {
    const recovered = await recoverJournal(replica, log)
    if (recovered !== 'none') log(`${replica}: journal ${recovered} first`)
    const read = await readReplicaState(replica)
    let state: ReplicaState
    let resumed = false
    if (read.state?.promoted) {
      state = read.state
      resumed = true
      const p = state.promoted as PromotedInfo
      if (o.at !== undefined && (p.rollbackTo ?? p.atSeq) !== o.at)
        throw new UsageError(
          'USAGE',
          `${replica} was promoted already (${p.rollbackTo === undefined ? 'without a rollback' : `rolled back to ${p.rollbackTo}`}); --at ${o.at} cannot apply now`,
        )
    } else {
      state = checkFailoverFit(read.state, read.error, replica, o, now)
      o.check?.(state)
      // --at the newest point is no rollback (a group failover names every member's sequence).
      if (o.at === state.lastSeq) o = {...o, at: undefined}
      const final = state.final?.seq === state.lastSeq
      const promoted: PromotedInfo = {
        epoch: (state.epoch ?? 0) + 1,
        atSeq: state.lastSeq,
        ms: now,
        oldReplicaId: state.replicaId,
        newReplicaId: crypto.randomBytes(16).toString('hex'),
        planned: final,
        lossWindowMs: final ? 0 : Math.max(0, now - (state.commitMs ?? state.updatedMs)),
        ...(o.at !== undefined ? {rollbackTo: o.at} : {}),
        rollbackDone: o.at === undefined,
      }
      // Checked before anything is recorded: a point that is not kept refuses with nothing changed.
      if (o.at !== undefined) await (await planRollback(replica, state, o.at)).close()
      // Fenced from here: no push or full sync of the old source writes it again.
      state = {...state, promoted, epoch: promoted.epoch}
      await writeReplicaState(replica, state)
    }
    // A group push's bundle held beside it (its receiver killed between the members' applies) is
    // never applied to a promoted replica: it would move this member alone past the failover's point.
    await fs.rm(heldJournalPathFor(replica), {force: true})
    const p = state.promoted as PromotedInfo
    let undone = new Bitmap(Math.ceil(state.diskSize / state.blockSize))
    const fh = await fs.open(replica, constants.O_RDWR | constants.O_NOFOLLOW)
    try {
      // The record is made only after the rollback is durable: once it is in place, a tracker may
      // already serve the disk, so the rollback is never run again over the VM's writes.
      const recordIn = await promotedRecordIn(replica, p.newReplicaId)
      if (p.rollbackTo !== undefined && !p.rollbackDone && !recordIn) {
        const plan = await planRollback(replica, state, p.rollbackTo)
        try {
          log(`rolling ${replica} back to point ${p.rollbackTo}: ${plan.undone.count()} blocks`)
          await plan.run(fh)
          undone = plan.undone
        } finally {
          await plan.close()
        }
      }
      if (!recordIn) {
        await createPromotedRecord({replica, state, newReplicaId: Buffer.from(p.newReplicaId, 'hex'), undone, target: o.to, settings: o.settings})
      }
      if (!p.rollbackDone) {
        const st = await fh.stat({bigint: true})
        state = {
          ...state,
          promoted: {...p, rollbackDone: true},
          size: Number(st.size),
          mtimeNs: st.mtimeNs.toString(),
          ctimeNs: st.ctimeNs.toString(),
          updatedMs: Date.now(),
        }
        await writeReplicaState(replica, state)
      }
    } finally {
      await fh.close()
    }
    return {
      replica,
      psf: psfPathFor(replica),
      epoch: p.epoch,
      atSeq: p.atSeq,
      ...(p.rollbackTo !== undefined ? {rolledBackTo: p.rollbackTo} : {}),
      undoneBlocks: undone.count(),
      planned: p.planned,
      lossWindowSeconds: Math.round(p.lossWindowMs / 1000),
      resumed,
      newReplicaId: p.newReplicaId,
      oldReplicaId: p.oldReplicaId,
    }
  } finally {
    release()
  }
}
