// One replica under test (session.ts serves one, group-session.ts every member of a group over
// one NBD server): its test folder locked and cleared, its point pinned and read through the
// point reader, the side file that takes the guest's writes, and at the end the test recorded
// in the replica's state and the folder discarded. The replica and its points are never written.
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import {LockError} from '../errors.js'
import {parsePointSpec, resolvePoint} from '../export/at.js'
import {tryLockTest, type HeldTestLock} from '../locks/index.js'
import {openPoint, type PointReader} from '../points/point-reader.js'
import {writeFileAtomic} from '../util/fs-atomic.js'
import {OverlayBackend} from './overlay-backend.js'
import {infoFileIn, readTestInfo, sideFileIn, testDirFor, type TestInfo} from './paths.js'
import {recordTest} from './record.js'

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

export class TestMember {
  private info: TestInfo | null = null

  private constructor(
    readonly replica: string,
    readonly exportName: string,
    readonly capBytes: number,
    readonly staleRemoved: boolean,
    private readonly dir: string,
    private readonly lock: HeldTestLock,
    private readonly reader: PointReader,
    private readonly side: fs.FileHandle,
    readonly backend: OverlayBackend,
  ) {}

  /** Lock the replica's test folder, pin point `at` (a point spec) and make the side file. */
  static async open(replica: string, at: string | undefined, exportName: string, capBytes?: number): Promise<TestMember> {
    const point = await resolvePoint(replica, parsePointSpec(at))
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
    try {
      const staleRemoved = await clearFolder(dir)
      reader = await openPoint(replica, point.seq)
      side = await fs.open(sideFileIn(dir), constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
      await side.truncate(reader.size)
      const cap = capBytes ?? defaultCap(reader.size)
      return new TestMember(replica, exportName, cap, staleRemoved, dir, lock, reader, side, new OverlayBackend(reader, side, exportName, cap))
    } catch (err) {
      await side?.close().catch(() => {})
      await reader?.close()
      await clearFolder(dir).catch(() => {})
      await fs.rmdir(dir).catch(() => {})
      await lock.release()
      throw err
    }
  }

  /** Say who runs the test and where it is served (test.json, for `test stop` and `points`). */
  async publish(nbd: string[]): Promise<TestStarted> {
    this.info = {pid: process.pid, seq: this.reader.seq, pointMs: this.reader.ms, startedMs: Date.now(), capBytes: this.capBytes, nbd}
    await writeFileAtomic(infoFileIn(this.dir), Buffer.from(JSON.stringify(this.info)), 0o600)
    return {
      replica: this.replica,
      seq: this.reader.seq,
      time: new Date(this.reader.ms).toISOString(),
      size: this.reader.size,
      capBytes: this.capBytes,
      exportName: this.exportName,
      nbd,
      staleRemoved: this.staleRemoved,
    }
  }

  /** The test did not start: nothing is recorded, the folder goes. */
  async abort(): Promise<void> {
    await this.side.close().catch(() => {})
    await this.reader.close()
    await clearFolder(this.dir).catch(() => {})
    await fs.rmdir(this.dir).catch(() => {})
    await this.lock.release()
  }

  /** After the NBD service ended: unpin the point, record the test, discard the side file. */
  async finish(endedMs: number): Promise<TestStopped> {
    const info = this.info as TestInfo
    const sideBytes = this.backend.sideBytes
    await this.side.close().catch(() => {})
    await this.reader.close()
    // The side file goes whatever happens to the record (a state made unreadable meanwhile, say).
    let notRecorded: string | undefined
    try {
      const rec = {seq: info.seq, pointMs: info.pointMs, startedMs: info.startedMs, endedMs}
      if (!(await recordTest(this.replica, rec))) notRecorded = 'a receiver held the replica lock for over a minute'
    } catch (err) {
      notRecorded = (err as Error).message
    }
    await clearFolder(this.dir)
    await this.lock.release()
    await fs.rmdir(this.dir).catch(() => {}) // a new test may have taken it meanwhile
    return {
      replica: this.replica,
      seq: info.seq,
      seconds: (endedMs - info.startedMs) / 1000,
      writes: this.backend.writes,
      bytesWritten: this.backend.bytesWritten,
      sideBytes,
      recorded: notRecorded === undefined,
      ...(notRecorded === undefined ? {} : {notRecorded}),
    }
  }
}
