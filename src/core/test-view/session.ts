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
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import {LockError} from '../errors.js'
import {describeAddress, ownPeers} from '../export/serve-point.js'
import {parsePointSpec, resolvePoint} from '../export/at.js'
import {tryLockTest, type HeldTestLock} from '../locks/index.js'
import {openPoint, type PointReader} from '../points/point-reader.js'
import {NbdServer} from '../tracker/nbd/server.js'
import {writeFileAtomic} from '../util/fs-atomic.js'
import {OverlayBackend} from './overlay-backend.js'
import {infoFileIn, readTestInfo, sideFileIn, testDirFor, type TestInfo} from './paths.js'
import {recordTest} from './record.js'

export interface TestStartOptions {
  at?: string
  listen: string[]
  /** Cap of the side file in bytes; default defaultCap(disk size). */
  capBytes?: number
  log?: (line: string) => void
  /** One line per connection refused (another user's peer on loopback TCP); default: log. */
  onRefused?: (line: string) => void
}

export interface TestStarted {
  replica: string
  seq: number
  /** The point's commit time, ISO 8601. */
  time: string
  size: number
  capBytes: number
  exportName: string
  nbd: string[]
  /** A folder left by a killed test was found and discarded first. */
  staleRemoved: boolean
}

export interface TestStopped {
  replica: string
  seq: number
  seconds: number
  writes: number
  bytesWritten: number
  /** What the side file held when it was discarded. */
  sideBytes: number
  /** The test is in the replica's state. */
  recorded: boolean
  /** Why not, when it is not. */
  notRecorded?: string
}

/** 10% of the disk, at least 1 GiB (never more than the disk: a view cannot hold more than that). */
export function defaultCap(diskSize: number): number {
  return Math.min(diskSize, Math.max(Math.ceil(diskSize / 10), 1 << 30))
}

/** Discard everything in the folder but its lock; true when something was there. */
async function clearFolder(dir: string): Promise<boolean> {
  const names = (await fs.readdir(dir)).filter((n) => n !== 'lock')
  for (const n of names) await fs.rm(path.join(dir, n), {recursive: true, force: true})
  return names.length > 0
}

export class TestView {
  private stopping: Promise<TestStopped> | null = null

  private constructor(
    readonly started: TestStarted,
    private readonly info: TestInfo,
    private readonly dir: string,
    private readonly lock: HeldTestLock,
    private readonly reader: PointReader,
    private readonly side: fs.FileHandle,
    private readonly backend: OverlayBackend,
    private readonly server: NbdServer,
  ) {}

  static async start(replica: string, opts: TestStartOptions): Promise<TestView> {
    const point = await resolvePoint(replica, parsePointSpec(opts.at))
    const dir = testDirFor(replica)
    const lock = await tryLockTest(dir)
    if (!lock) {
      const other = await readTestInfo(dir)
      throw new LockError(`a test of ${replica} is running${other ? ` (pid ${other.pid}, point ${other.seq})` : ''}`, {
        hint: `stop it with \`vdrep test stop ${replica}\``,
      })
    }
    let reader: PointReader | undefined
    let side: fs.FileHandle | undefined
    let server: NbdServer | undefined
    try {
      const staleRemoved = await clearFolder(dir)
      reader = await openPoint(replica, point.seq)
      side = await fs.open(sideFileIn(dir), constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
      await side.truncate(reader.size)
      const capBytes = opts.capBytes ?? defaultCap(reader.size)
      const exportName = path.basename(replica)
      const backend = new OverlayBackend(reader, side, exportName, capBytes)
      server = new NbdServer(backend, {unixMode: 0o600, allowedPeerUids: ownPeers(), logger: opts.log, onRefused: opts.onRefused})
      const nbd: string[] = []
      for (const spec of opts.listen) nbd.push(describeAddress(await server.listen(spec)))
      const info: TestInfo = {pid: process.pid, seq: reader.seq, pointMs: reader.ms, startedMs: Date.now(), capBytes, nbd}
      await writeFileAtomic(infoFileIn(dir), Buffer.from(JSON.stringify(info)), 0o600)
      const started: TestStarted = {
        replica,
        seq: reader.seq,
        time: new Date(reader.ms).toISOString(),
        size: reader.size,
        capBytes,
        exportName,
        nbd,
        staleRemoved,
      }
      return new TestView(started, info, dir, lock, reader, side, backend, server)
    } catch (err) {
      await server?.close()
      await side?.close().catch(() => {})
      await reader?.close()
      await clearFolder(dir).catch(() => {})
      await fs.rmdir(dir).catch(() => {})
      await lock.release()
      throw err
    }
  }

  get connections(): number {
    return this.server.connectionCount
  }

  stop(): Promise<TestStopped> {
    this.stopping ??= this.shutdown()
    return this.stopping
  }

  private async shutdown(): Promise<TestStopped> {
    await this.server.close()
    const endedMs = Date.now()
    const sideBytes = this.backend.sideBytes
    await this.side.close().catch(() => {})
    await this.reader.close()
    // The side file goes whatever happens to the record (a state made unreadable meanwhile, say).
    let notRecorded: string | undefined
    try {
      const rec = {seq: this.info.seq, pointMs: this.info.pointMs, startedMs: this.info.startedMs, endedMs}
      if (!(await recordTest(this.started.replica, rec))) notRecorded = 'a receiver held the replica lock for over a minute'
    } catch (err) {
      notRecorded = (err as Error).message
    }
    await clearFolder(this.dir)
    await this.lock.release()
    await fs.rmdir(this.dir).catch(() => {}) // a new test may have taken it meanwhile
    return {
      replica: this.started.replica,
      seq: this.info.seq,
      seconds: (endedMs - this.info.startedMs) / 1000,
      writes: this.backend.writes,
      bytesWritten: this.backend.bytesWritten,
      sideBytes,
      recorded: notRecorded === undefined,
      ...(notRecorded === undefined ? {} : {notRecorded}),
    }
  }
}
