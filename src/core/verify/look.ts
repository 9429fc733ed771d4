// What `vdrep verify` and `fullsync --dry-run` share: look at a disk and its replica without
// changing either. The disk lock is taken (one push, full sync or verify of a disk at a time:
// a push then waits no longer than this look, and gets LOCKED meanwhile, as during a full
// sync), so no push moves the record or the replica under the comparison and no tracker starts;
// the record is opened read-only whoever owns it (a running tracker keeps writing it: it is
// asked, never told), and checked to be this disk's own; the replica is compared over a
// NO_WRITE session (the receiver takes its replica lock for the session, so no commit lands
// mid-scan). Nothing here writes the .psf, the replica, its state, journal or points.
import {timeoutMsOf} from '../psf/settings.js'
import {ChangeRecord} from '../change-record/change-record.js'
import {checkOpenedDisk, checkRecordIdentity} from '../change-record/identity.js'
import {SourceDisk} from '../disk/source-disk.js'
import {acquireDiskLock, checkNoUnreachableTracker} from '../locks/index.js'
import {psfPathFor} from '../psf/psf-file.js'
import {parseTarget} from '../target/target.js'
import {TrackerControlClient} from '../tracker/control-client.js'
import {connectReceiver} from '../transport/connect.js'
import {withCarrier, type SshCarrier} from '../psf/settings.js'
import {checkBeforeSync, checkTargetNotSource} from '../fullsync/plan.js'
import type {SyncLog} from '../sync/progress.js'
import {compareWithReplica, type CompareContext, type CompareOutcome} from './compare.js'

export interface LookOptions {
  acceptNewHostKey?: boolean
  /** --timeout: SSH targets only (transport/connect.ts). */
  timeoutMs?: number
  /** This run's SSH carrier (--ssh), over the one in the disk's settings. */
  sshCarrier?: SshCarrier
  /** The full sync's own choice for a replica larger than the disk (dry run). */
  truncateReplica?: boolean
  log?: SyncLog
  onProgress?: (bytesCompared: number, bytesTotal: number) => void
}

/** What the look holds while it compares: read it, never write it. */
export interface Looking {
  record: ChangeRecord
  tracker: TrackerControlClient | null
  source: SourceDisk
  diskSize: number
}

export interface LookHooks<T> {
  /** The hello's fence flags (NO_WRITE is added). */
  flags: number
  /** Before connecting: what must be read before the replica is. */
  before: (l: Looking) => Promise<void>
  onChunk: CompareContext['onChunk']
  /** After the comparison, still holding everything. */
  after: (l: Looking, outcome: CompareOutcome) => Promise<T>
}

export async function lookAtReplica<T>(disk: string, opts: LookOptions, hooks: LookHooks<T>): Promise<T> {
  // A disk with no record (or an unreadable one) is refused before the lock, whose file would be
  // left behind.
  await (await ChangeRecord.openReadOnly(psfPathFor(disk))).close()
  const lock = await acquireDiskLock(disk, 'verify')
  try {
    const tracker = await TrackerControlClient.tryConnect(disk)
    try {
      const psf = psfPathFor(disk)
      if (!tracker) await checkNoUnreachableTracker(disk, psf)
      const record = await ChangeRecord.openReadOnly(psf)
      try {
        const ctx = {trackerRunning: tracker !== null}
        await checkRecordIdentity(record, disk, ctx)
        const source = await SourceDisk.open(disk)
        try {
          checkOpenedDisk(record, disk, await source.stat(), source.size, ctx)
          return await compare(disk, {record, tracker, source, diskSize: source.size}, opts, hooks)
        } finally {
          await source.close()
        }
      } finally {
        await record.close()
      }
    } finally {
      await tracker?.close()
    }
  } finally {
    await lock.release()
  }
}

async function compare<T>(disk: string, l: Looking, opts: LookOptions, hooks: LookHooks<T>): Promise<T> {
  const h = l.record.header
  checkBeforeSync(disk, h, l.diskSize, l.tracker !== null, opts.truncateReplica === true)
  const target = parseTarget(h.settings.target)
  if (target.kind === 'local') checkTargetNotSource(disk, target.path)
  await hooks.before(l)
  const conn = await connectReceiver(target, {
    port: h.settings.fullsyncPort,
    log: opts.log,
    acceptNewHostKey: opts.acceptNewHostKey,
    timeoutMs: timeoutMsOf(opts.timeoutMs, h.settings),
    ssh: withCarrier(h.settings.ssh, opts.sshCarrier),
  })
  let outcome: CompareOutcome
  try {
    outcome = await compareWithReplica({
      conn,
      source: l.source,
      header: h,
      diskSize: l.diskSize,
      flags: hooks.flags,
      onChunk: hooks.onChunk,
      onProgress: (b) => opts.onProgress?.(b, l.diskSize),
    })
    conn.writer.end()
  } catch (err) {
    conn.abort()
    throw err
  } finally {
    await conn.close().catch(() => {})
  }
  return hooks.after(l, outcome)
}
