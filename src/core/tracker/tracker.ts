// `vdrep track <disk> --nbd ...`: the write tracker. Starts only on a change record it can
// trust, serves the disk over NBD through the recording backend, answers the control
// socket, and on a clean stop records the disk's stamp and sets CLEAN_SHUTDOWN. The flag is
// cleared at start, so a tracker killed with -9 leaves a bitmap that is trusted on restart.
// While it runs it owns the .psf (its ChangeRecord): pushes and full syncs ask it, over the
// control socket, for every change of the record.
import fs from 'node:fs/promises'
import {FullSyncNeededError, UsageError} from '../errors.js'
import {HeaderFlag} from '../psf/header.js'
import {STAMP_SETTLE_MS, stampOf} from '../psf/disk-stamp.js'
import {checkOpenedDisk} from '../change-record/identity.js'
import {canVerify} from '../change-record/doubt.js'
import {identityOf, IdentityKind, sameDisk, type DiskIdentity} from '../psf/disk-identity.js'
import {bytesCovered, unionOf} from '../change-record/moves.js'
import {ControlServer, type ControlHandler} from './control-server.js'
import type {TrackerStatus} from './control-client.js'
import {recordTransitions} from './control-record.js'
import {DirtyLog, type DirtyLogStats} from './dirty-log.js'
import {Freezer} from './freezer.js'
import {FileBackend} from './nbd/file-backend.js'
import {isLoopback, NbdServer, parseListenSpec, type NbdAddress} from './nbd/server.js'
import {controlSocketPath, cowPathFor} from './paths.js'
import {badPageWarning, openRecord, verificationAtStart, type OpenRecord} from './record.js'
import {RecordingBackend, type RecordingCounters} from './recording-backend.js'
import {WriteGate} from './write-gate.js'
import {Verifier} from './verifier.js'
import type {OutsideWriteWatcher} from './outside-writes.js'
import {watchOutsideWrites} from './outside-watch.js'
import {emptyActivityLog} from '../psf/activity-log.js'
import {formatBytes} from '../util/units.js'
import {WARM_UP_ENABLED, warmUp, type WarmUpResult} from './warm-up.js'

export const DEFAULT_COW_LIMIT = 1 << 30

export type TrackerLog = (level: 'warn' | 'info' | 'debug', line: string) => void

export interface TrackerOptions {
  /** Where to serve NBD: `unix:PATH` or `HOST:PORT`, one or more. */
  listen: string[]
  /** Allow non-loopback TCP addresses. */
  listenAny?: boolean
  /** Cap of the copy-on-write side file during a push. Default 1 GiB. */
  cowLimit?: number
  /** Warnings (bad pages, cancelled freezes), notices, and per-connection lines (debug). */
  log?: TrackerLog
  /** Run the request path on a scratch export before serving (warm-up.ts). Default: on unless VDREP_TRACKER_WARMUP=0. */
  warmUp?: boolean
}

export interface TrackerStarted {
  disk: string
  psf: string
  exportName: string
  nbd: string[]
  controlSocket: string
  blockSize: number
  diskSize: number
  blockCount: number
  /** Blocks dirty when serving began, and the bytes they cover. */
  dirtyBlocks: number
  bytesPending: number
  /** Blocks a dead push left in flight, merged back at start. */
  mergedInflight: number
  /** Bitmap pages that failed their CRC (their blocks were marked dirty). */
  badPages: number
  needsFullSync: boolean
  /** Why the tracker checks the disk against the block hash index behind the export, or null. */
  verifying: string | null
  /** The warm-up run before the export served (null: off). */
  warmUp: WarmUpResult | null
}

export interface TrackerStopped extends RecordingCounters, DirtyLogStats {
  disk: string
  clean: boolean
  seconds: number
  dirtyBlocks: number
  bytesPending: number
}

export function formatAddress(a: NbdAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`
}

export class Tracker {
  private stopping: Promise<TrackerStopped> | null = null
  private readonly startedMs = Date.now()

  private constructor(
    private readonly rec: OpenRecord,
    private readonly inner: FileBackend,
    private readonly log: DirtyLog,
    private readonly freezer: Freezer,
    private readonly backend: RecordingBackend,
    private readonly nbd: NbdServer,
    private readonly control: ControlServer,
    private readonly verifier: Verifier,
    private readonly watcher: OutsideWriteWatcher | null,
    readonly started: TrackerStarted,
  ) {}

  static async start(diskArg: string, opts: TrackerOptions): Promise<Tracker> {
    const say: TrackerLog = opts.log ?? (() => {})
    // Bad addresses are refused before anything is locked or changed.
    if (opts.listen.length === 0) throw new UsageError('NBD_LISTEN', 'no NBD address to serve on', {hint: 'pass --nbd unix:PATH or HOST:PORT'})
    for (const spec of opts.listen) {
      const where = parseListenSpec(spec)
      if (where.kind === 'tcp' && !opts.listenAny && !isLoopback(where.host)) {
        throw new UsageError('NBD_NOT_LOOPBACK', `refusing to serve NBD on ${where.host}: NBD has no authentication`, {
          hint: 'listen on 127.0.0.1 or a unix socket, or pass --listen-any',
        })
      }
    }
    const rec = await openRecord(diskArg, 'tracker')
    const {disk, record} = rec
    const cleanup: Array<() => Promise<unknown>> = [async () => rec.lock.release(), () => rec.diskLock.release(), () => record.close()]
    const undo = async () => {
      for (const f of cleanup.reverse()) await f().catch(() => {})
    }
    try {
      const h = record.header
      // The VM's first requests find the request path compiled (warm-up.ts); nothing of this disk
      // is touched. It runs before any object of the real stack exists: its requests generalize
      // the classes (hidden maps) of the request path's objects (a counter that became a double,
      // a field that saw a second kind of value), and objects made before that keep the old map,
      // which the compiled code does not accept: the VM's first requests deoptimized it ("wrong
      // map" in the activity log's stats, the request path's function thrown away and compiled
      // again on the VM's time).
      const warmed =
        (opts.warmUp ?? WARM_UP_ENABLED)
          ? await warmUp({blockSize: h.blockSize, extentBytes: 2 ** h.alExtentShift, alExtents: h.alExtents, diskSize: h.diskSize})
          : null
      if (warmed)
        say(
          'debug',
          `warm-up: ${warmed.requests} requests in ${warmed.passes} passes, ${warmed.ms.toFixed(0)} ms${warmed.error ? `; stopped: ${warmed.error}` : ''}`,
        )
      const inner = await FileBackend.open(disk)
      cleanup.push(() => inner.close())
      if (rec.bound) say('info', rec.bound)
      // The tracker binds to the inode it opened: it must be the one the record names (the path
      // may have been swapped since the record was checked). Pushes check the path against it.
      checkOpenedDisk(record, disk, await inner.stat(), inner.size, {trackerRunning: false})
      if (record.migrated)
        say('info', `${record.path} was migrated to format 3 (an activity log of ${h.alExtents} extents of ${formatBytes(2 ** h.alExtentShift)} added)`)
      const verify = await verificationAtStart(record, disk, say)
      const bs = h.blockSize
      const blockCount = record.blockCount
      const maps = await record.bitmaps()
      for (const p of maps.activeBad) say('warn', badPageWarning(record.path, 'active', p, blockCount))
      for (const p of maps.inflightBad) say('warn', badPageWarning(record.path, 'in-flight', p, blockCount))
      // The hot extents stay hot; a log that vouches for nothing (a bad page) starts empty (a
      // check of every block is asked for below, durably, before any write).
      const read = await record.readActivityLog()
      const image = typeof read === 'string' ? emptyActivityLog(h.alExtents) : read
      // From here the dirty log holds the bitmaps; the record is written through its store.
      const log = new DirtyLog(record.bitmapStore, maps.active, maps.inflight, {
        al: {image, extentBlocks: 2 ** h.alExtentShift / bs, store: record.activityLogStore},
      })
      cleanup.push(async () => log.close())
      // After a crash the log vouches only through a check against the index: without a valid
      // one (before the first full sync, while one rewrites it) every new bit is durable first.
      const useLog = () => (log.useLog = canVerify(record.header))
      useLog()
      if (maps.activeBad.length > 0) await log.rewriteActive(maps.activeBad)
      const mergedInflight = maps.inflight.isEmpty() ? 0 : await log.mergeBack()
      if (mergedInflight > 0) say('info', `${mergedInflight} blocks left in flight by an interrupted push were handed back to the change record`)
      const cowPath = cowPathFor(rec.canonical)
      await fs.rm(cowPath, {force: true})

      // From here on, writes may reach the disk: the record must not claim a clean stop.
      cleanup.push(await record.uncleanStart())

      const gate = new WriteGate()
      const geo = {blockSize: bs, diskSize: inner.size, blockCount}
      const freezer = new Freezer(log, gate, inner, geo, {cowPath, cowLimit: opts.cowLimit ?? DEFAULT_COW_LIMIT, log: say})
      const verifier = new Verifier(disk, record, log, freezer, {
        started: (why) =>
          say(
            'info',
            `checking every block of ${disk} against the block hash index of the last sync (a local read): ${why}; the export is served meanwhile and pushes wait for the check`,
          ),
        done: (d) =>
          say('info', `checked ${d.blocksScanned} blocks in ${d.seconds.toFixed(1)} s: ${d.blocksNewlyMarked} changed and not yet marked, now marked`),
        failed: (err) => say('warn', `the check against the block hash index failed: ${err.message}; pushes are refused until it passes (restart the tracker)`),
      })
      cleanup.push(() => verifier.close())
      // Writes by other programs (a dd into the disk) bypass the export: the kernel tells us.
      const watcher = watchOutsideWrites(disk, inner.fd, verifier, say)
      cleanup.push(async () => watcher?.close())
      // Durable before the export serves: a clean stop before the check ends keeps it asked for.
      if (verify) await verifier.request(verify.reason, verify.blocks)
      if (typeof read === 'string') {
        say('warn', `${record.path}: ${read}; it is written anew`)
        await record.resetActivityLog(image)
      }
      const backend = new RecordingBackend(inner, log, gate, freezer, bs)
      // Over TCP, only this user's processes (qemu run by the same user) and root get the disk.
      const nbd = new NbdServer(backend, {
        listenAny: opts.listenAny,
        allowedPeerUids: [...new Set([process.getuid?.() ?? 0, 0])],
        logger: (line) => say('debug', line),
        onRefused: (line) => say('warn', line),
      })
      cleanup.push(() => nbd.close())
      for (const spec of opts.listen) await nbd.listen(spec)

      let tracker: Tracker | undefined
      const transition = recordTransitions(record, (first, last) => log.mark(first, last))
      const handler: ControlHandler = {
        status: () => (tracker as Tracker).status(),
        freeze: async (conn, preserve, holdMs) => {
          // A check and a push take turns (verifier.ts): taken in one synchronous step after it.
          while (verifier.busy) await verifier.idle()
          if (verifier.failure) {
            throw new FullSyncNeededError(`the tracker could not check ${disk} against the block hash index: ${verifier.failure.message}`, {
              hint: 'restart `vdrep track` to check again, or run `vdrep fullsync`',
            })
          }
          const bitmap = await freezer.freeze(conn, preserve, holdMs)
          return {body: {blockSize: bs, diskSize: inner.size, blockCount, blocks: bitmap.count()}, bitmap}
        },
        release: (conn) => freezer.release(conn),
        read: (conn, first, count) => freezer.read(conn, first, count),
        complete: (conn, ok) => freezer.complete(conn, ok),
        // The verifier may yet mark blocks the bitmaps do not show: `verifying` says so.
        pending: () => {
          const bitmap = unionOf(log.active, log.inflight)
          return {body: {blockCount, blocks: bitmap.count(), verifying: verifier.busy || verifier.failure !== null}, bitmap}
        },
        transition: async (_conn, req, data) => {
          try {
            return await transition(req, data)
          } finally {
            useLog()
          }
        },
        disconnected: (conn) => freezer.ownerGone(conn),
      }
      const control = await ControlServer.listen(controlSocketPath(rec.canonical), handler, {log: say})
      const started: TrackerStarted = {
        disk,
        psf: record.path,
        exportName: inner.exportName,
        nbd: nbd.addresses.map(formatAddress),
        controlSocket: control.path,
        blockSize: bs,
        diskSize: inner.size,
        blockCount,
        dirtyBlocks: maps.active.count(),
        bytesPending: bytesCovered(maps.active, bs, inner.size),
        mergedInflight,
        badPages: maps.activeBad.length + maps.inflightBad.length,
        needsFullSync: (record.header.flags & HeaderFlag.NEEDS_FULL_SYNC) !== 0,
        verifying: verify?.reason ?? null,
        warmUp: warmed,
      }
      tracker = new Tracker(rec, inner, log, freezer, backend, nbd, control, verifier, watcher, started)
      // Pushes find this tracker through its control socket from now on.
      await rec.diskLock.release()
      return tracker
    } catch (err) {
      await undo()
      throw err
    }
  }

  status(): TrackerStatus {
    const s = this.started
    const broken = this.log.broken
    const pending = unionOf(this.log.active, this.log.inflight)
    return {
      version: 1,
      pid: process.pid,
      disk: s.disk,
      exportName: s.exportName,
      nbd: s.nbd,
      clients: this.nbd.connectionCount,
      controlClients: this.control.clientCount,
      blockSize: s.blockSize,
      diskSize: s.diskSize,
      blockCount: s.blockCount,
      dirtyBlocks: this.log.active.count(),
      inflightBlocks: this.log.inflight.count(),
      pendingBlocks: pending.count(),
      bytesPending: bytesCovered(pending, s.blockSize, s.diskSize),
      frozen: this.freezer.info,
      verifying: this.verifier.info,
      startedMs: this.startedMs,
      writes: this.backend.counters.writes,
      bytesWritten: this.backend.counters.bytesWritten,
      ...this.log.stats,
      activityLog: this.log.al && {
        inUse: this.log.useLog,
        hotExtents: this.log.al.hotCount,
        extents: this.log.al.capacity,
        extentBytes: this.log.al.extentBlocks * s.blockSize,
      },
      broken: broken ? broken.message : null,
    }
  }

  /**
   * Clean stop: finish the requests in flight, hand back any frozen blocks, make the data
   * durable, record the disk's stamp and set CLEAN_SHUTDOWN. Safe to call more than once.
   */
  stop(): Promise<TrackerStopped> {
    this.stopping ??= this.shutdown()
    return this.stopping
  }

  private async shutdown(): Promise<TrackerStopped> {
    const {record, lock, disk} = this.rec
    try {
      await this.nbd.close()
      await this.freezer.abort().catch(() => {})
      await this.control.close().catch(() => {})
      // An unfinished check keeps VERIFY_NEEDED in the record: the next start checks again.
      await this.verifier.close()
      // The exact bitmap reaches the .psf before the clean stop is recorded.
      await this.log.flushAll()
      this.log.close()
      let clean = this.log.broken === null
      try {
        await this.inner.flush()
      } catch {
        clean = false
      }
      // The path no longer names the disk this tracker wrote (replaced with `mv`): its stamp is
      // not our disk's clean point. The record stays unclean (and belongs to the old inode).
      if (clean && !(await pathStillNamesRecordedDisk(disk, record.header.identity))) clean = false
      // The stamp first, the watcher's last drain after it (and after the settle wait): a write
      // by another program before the drain is in it, one after it moves the mtime past the
      // stamp. With no watcher (or one that stopped) nothing vouches: the record asks for a check.
      const stamp = clean ? await stampOf(disk) : null
      if (stamp) {
        // A write by another program in the same timestamp tick as our last one would go unseen:
        // the stamp is recorded only once a later write would move the mtime.
        const age = Date.now() - Number(stamp.mtimeNs / 1_000_000n)
        if (age >= 0 && age < STAMP_SETTLE_MS) await new Promise((r) => setTimeout(r, STAMP_SETTLE_MS - age))
      }
      const seen = this.watcher?.close() ?? null
      const outside = !this.watcher || seen !== null || this.watcher.lost !== undefined || this.verifier.askedAfterClose
      if (stamp) await record.cleanStop(stamp, {verifyNeeded: outside})
      return {
        disk,
        clean,
        seconds: (Date.now() - this.startedMs) / 1000,
        ...this.backend.counters,
        ...this.log.stats,
        dirtyBlocks: this.log.active.count(),
        bytesPending: bytesCovered(this.log.active, this.started.blockSize, this.started.diskSize),
      }
    } finally {
      this.watcher?.close()
      await this.inner.close().catch(() => {})
      await record.close().catch(() => {})
      lock.release()
    }
  }
}

async function pathStillNamesRecordedDisk(disk: string, recorded: DiskIdentity): Promise<boolean> {
  if (recorded.kind === IdentityKind.NONE) return true
  const now = await identityOf(disk).catch(() => null)
  return now !== null && sameDisk(now, recorded)
}
