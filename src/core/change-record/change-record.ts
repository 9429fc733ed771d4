// The change record of one disk, `<disk>.psf`, and its only writer. Every change of its header,
// bitmaps and block hash index is one of the named transitions below; no other module calls
// the PsfFile writers. One process at a time holds a writable ChangeRecord (see claim.ts): the
// running tracker, or else the process holding the disk lock. Others ask that one (the
// tracker's control socket) or open the record read-only.
import {Bitmap} from '../psf/bitmap.js'
import {HeaderFlag, type PsfHeader, type ReplicaRefusal} from '../psf/header.js'
import {Region} from '../psf/layout.js'
import {PsfFile} from '../psf/psf-file.js'
import type {ActivityLogImage} from '../psf/activity-log.js'
import type {DiskStamp} from '../psf/disk-stamp.js'
import type {DiskIdentity} from '../psf/disk-identity.js'
import type {ReplicationSettings} from '../psf/settings.js'
import {doubtOf, doubtsOf, type Doubt, type DoubtContext} from './doubt.js'
import {clearBothMove, clearInflightMove, freezeMove, markScannedMove, mergeBackMove, type BitmapStore} from './moves.js'
import {grownLayout, relayout} from './relayout.js'
import type {CommitRecord, ProvedSync, RecordWriter} from './writer.js'
import {commitFields, provedFields, rebindFields, stampFields} from './header-fields.js'

export interface LoadedBitmaps {
  active: Bitmap
  inflight: Bitmap
  /** Pages that failed their CRC (their blocks read as all dirty). */
  activeBad: number[]
  inflightBad: number[]
}

export class ChangeRecord implements RecordWriter {
  private maps: LoadedBitmaps | null = null
  /** Header transitions run one at a time (a tracker serves several control connections). */
  private chain: Promise<unknown> = Promise.resolve()

  private constructor(
    private readonly psf: PsfFile,
    readonly writable: boolean,
  ) {}

  /** `vdrep init`: a new record (NEEDS_FULL_SYNC set by the caller's header), written atomically. */
  static async init(path: string, header: PsfHeader): Promise<void> {
    await PsfFile.create(path, header)
  }

  /**
   * `vdrep failover`: the promoted disk's first record, at `path` (a temp name the caller renames
   * into place): `header`, the blocks a rollback undid in the active set, the whole index, synced.
   */
  static async createPromoted(path: string, header: PsfHeader, undone: Bitmap, index: Buffer): Promise<void> {
    await PsfFile.create(path, header, {active: undone})
    const psf = await PsfFile.open(path, true)
    try {
      await psf.writeIndexPages(0, index)
      await psf.sync()
    } finally {
      await psf.close()
    }
  }

  /** Open for writing: only the process that owns the record (claim.ts) may. */
  static async openOwned(path: string): Promise<ChangeRecord> {
    return new ChangeRecord(await PsfFile.open(path, true), true)
  }

  /** Open read-only (status, a push whose tracker owns the record): it cannot write at all. */
  static async openReadOnly(path: string): Promise<ChangeRecord> {
    return new ChangeRecord(await PsfFile.open(path, false), false)
  }

  get path(): string {
    return this.psf.path
  }

  get header(): PsfHeader {
    return this.psf.header
  }

  get blockCount(): number {
    return this.psf.layout.blockCount
  }

  /** Its owner migrated the record from format 1 or 2 (adding the activity log) when opening it. */
  get migrated(): boolean {
    return this.psf.migrated
  }

  /** The activity log as on disk, or why it vouches for nothing (a bad page, no log). */
  readActivityLog(): Promise<ActivityLogImage | string> {
    return this.psf.readActivityLog()
  }

  /** A log that failed its checksum is written anew, whole (`image`: empty), at a tracker's start. */
  async resetActivityLog(image: ActivityLogImage): Promise<void> {
    this.checkWritable()
    await this.psf.writeActivityLog(
      image,
      Array.from({length: this.psf.layout.alPages}, (_, p) => p),
    )
  }

  /** Where the tracker's activity log writes its transactions (the owner's). */
  get activityLogStore(): {writeActivityLog(image: ActivityLogImage, pages: Iterable<number>): Promise<void>} {
    this.checkWritable()
    const psf = this.psf
    // VDREP_TEST_PLANT_SKIP_LOG_SYNC=1 is a deliberately broken build for the power-cut check
    // (test/integration/powercut.test.ts): the log's pages written, not synced, before the data.
    const planted = process.env.VDREP_TEST_PLANT_SKIP_LOG_SYNC === '1'
    return {writeActivityLog: (image, pages) => psf.writeActivityLog(image, pages, {sync: !planted})}
  }

  async close(): Promise<void> {
    await this.psf.close()
  }

  /** The one trust rule (doubt.ts), for the disk as it is now. */
  doubt(now: DiskStamp, ctx: DoubtContext): Doubt | null {
    return doubtOf(this.header, now, ctx)
  }

  doubts(now: DiskStamp, ctx: DoubtContext): Doubt[] {
    return doubtsOf(this.header, now, ctx)
  }

  /** Both bitmaps as on disk (read once; the transitions keep them current). */
  async bitmaps(): Promise<LoadedBitmaps> {
    if (!this.maps) {
      const a = await this.psf.readBitmap(Region.ACTIVE)
      const i = await this.psf.readBitmap(Region.INFLIGHT)
      this.maps = {active: a.bitmap, inflight: i.bitmap, activeBad: a.badPages, inflightBad: i.badPages}
    }
    return this.maps
  }

  /** The block hash index of the last sync (blocks on a bad page read as zero hashes). */
  readIndex(): Promise<{hashes: Buffer; badPages: number[]}> {
    return this.psf.readIndex()
  }

  /**
   * Where the tracker's dirty log writes its pages (the batches of newly dirty blocks and the
   * moves of moves.ts on the bitmaps it holds): the tracker owns the record, so it owns this.
   */
  get bitmapStore(): BitmapStore {
    this.checkWritable()
    const psf = this.psf
    return {path: psf.path, writeBitmap: (region, bm, pages, opts) => psf.writeBitmap(region, bm, pages, opts)}
  }

  // ---- the tracker's life --------------------------------------------------------------

  /**
   * A tracker starts: from now on writes reach the disk, so the record must not claim a clean
   * stop. Returns the undo for a start that fails half-way (puts back only what it cleared).
   */
  async uncleanStart(): Promise<() => Promise<void>> {
    const wasClean = (this.header.flags & HeaderFlag.CLEAN_SHUTDOWN) !== 0
    await this.patch((h) => ({flags: h.flags & ~HeaderFlag.CLEAN_SHUTDOWN}))
    return async () => {
      if (wasClean) await this.patch((h) => ({flags: h.flags | HeaderFlag.CLEAN_SHUTDOWN}))
    }
  }

  /**
   * A tracker stopped cleanly: the disk's stamp now; any later change shows (doubt.ts).
   * `verifyNeeded`: it could not vouch that nothing else wrote the disk while it ran (it saw an
   * outside write it has not verified yet, or could not watch for one).
   */
  async cleanStop(stamp: DiskStamp, opts: {verifyNeeded?: boolean} = {}): Promise<void> {
    const verify = opts.verifyNeeded ? HeaderFlag.VERIFY_NEEDED : 0
    await this.patch((h) => ({flags: h.flags | HeaderFlag.CLEAN_SHUTDOWN | verify, ...stampFields(stamp)}))
  }

  /**
   * A local verification (`track --scan`, a push that verified first): the blocks found changed
   * are marked, in-flight emptied, the stamp recorded as the clean point, VERIFY_NEEDED cleared.
   */
  async scanResult(changed: Bitmap, stamp: DiskStamp): Promise<number> {
    const m = await this.bitmaps()
    const newly = await markScannedMove(this.bitmapStore, m.active, m.inflight, changed, {active: m.activeBad, inflight: m.inflightBad})
    m.activeBad = []
    m.inflightBad = []
    await this.patch((h) => ({flags: (h.flags | HeaderFlag.CLEAN_SHUTDOWN) & ~HeaderFlag.VERIFY_NEEDED, ...stampFields(stamp)}))
    return newly
  }

  /** A running tracker learnt that the disk may have been written behind it: durable before it acts. */
  async verifyNeeded(): Promise<void> {
    if ((this.header.flags & HeaderFlag.VERIFY_NEEDED) === 0) await this.patch((h) => ({flags: h.flags | HeaderFlag.VERIFY_NEEDED}))
  }

  /** A running tracker's verification marked every differing block (through its dirty log): trusted again. */
  async verified(): Promise<void> {
    if (this.header.flags & HeaderFlag.VERIFY_NEEDED) await this.patch((h) => ({flags: h.flags & ~HeaderFlag.VERIFY_NEEDED}))
  }

  /** The record now names its disk (a format-1 record proved to be this disk's, identity.ts). */
  async bindIdentity(identity: DiskIdentity): Promise<void> {
    await this.patch(() => ({identity}))
  }

  /** Nothing in the record may be trusted any more: the next sync is a full sync. */
  async markUntrusted(): Promise<void> {
    await this.patch((h) => ({flags: (h.flags | HeaderFlag.NEEDS_FULL_SYNC) & ~HeaderFlag.INDEX_VALID}))
  }

  // ---- a push without a tracker --------------------------------------------------------

  /** A push that died left blocks in flight: they go back to the active record first. */
  async mergeLeftoverInflight(): Promise<number> {
    const m = await this.bitmaps()
    return m.inflight.isEmpty() ? 0 : mergeBackMove(this.bitmapStore, m.active, m.inflight)
  }

  /** The point in time without a tracker: active -> in-flight. Returns a copy of the frozen set. */
  async freeze(): Promise<Bitmap> {
    const m = await this.bitmaps()
    await freezeMove(this.bitmapStore, m.active, m.inflight)
    return new Bitmap(m.inflight.blockCount, Uint8Array.from(m.inflight.bits))
  }

  /**
   * The push ended: ok clears in-flight (`syncLater`: the commit that follows syncs the file);
   * a failure hands the blocks back to the active record.
   */
  async complete(ok: boolean, opts: {syncLater?: boolean} = {}): Promise<number> {
    const m = await this.bitmaps()
    if (ok) return clearInflightMove(this.bitmapStore, m.inflight, {sync: !opts.syncLater})
    return mergeBackMove(this.bitmapStore, m.active, m.inflight)
  }

  /**
   * The disk grew (no tracker): the record is laid out anew for the new size, bitmaps and the
   * index's whole pages carried over, every new block (and the old partial last one) dirty.
   */
  async grow(newSize: number): Promise<void> {
    this.checkWritable()
    const m = await this.bitmaps()
    const {hashes} = await this.psf.readIndex()
    const next = grownLayout(this.header, this.blockCount, newSize, m.active, m.inflight, hashes)
    await relayout(this.psf, next)
    this.maps = null
  }

  // ---- RecordWriter: what push and full sync ask of the owner ---------------------------

  async beginCommit(seq: number): Promise<void> {
    await this.patch(() => ({pendingSeq: seq}))
  }

  async adoptCommitted(seq: number): Promise<void> {
    await this.patch(() => ({lastSeq: seq, pendingSeq: 0}))
  }

  async storeBlockHashes(hashes: Map<number, Buffer>): Promise<void> {
    this.checkWritable()
    await this.psf.updateIndexBlocks(hashes)
  }

  /** The replica committed `c.seq` (header-fields.ts). */
  async commit(c: CommitRecord): Promise<void> {
    await this.patch((h) => commitFields(h, c))
  }

  /** The replica host refused a sync (REPLICA_DIVERGED or REPLICA_FOREIGN): kept for `status` until a proved sync. */
  async replicaRefused(code: ReplicaRefusal): Promise<void> {
    const flag = HeaderFlag[code]
    if ((this.header.flags & flag) === 0) await this.patch((h) => ({flags: h.flags | flag}))
  }

  // ---- failover (doc/failover.md) -------------------------------------------------------

  /**
   * A reprotect: the old primary's disk holds these blocks differently from this (promoted)
   * disk; they join the active record, durably, before the old primary becomes a replica.
   */
  async markOwed(owed: Bitmap): Promise<number> {
    const m = await this.bitmaps()
    const newly = await markScannedMove(this.bitmapStore, m.active, m.inflight, owed, {active: m.activeBad, inflight: m.inflightBad})
    m.activeBad = []
    m.inflightBad = []
    return newly
  }

  /** Where and how this record replicates (a promoted disk learns it at its reprotect). */
  async updateSettings(patch: Partial<ReplicationSettings>): Promise<void> {
    await this.patch((h) => ({settings: {...h.settings, ...patch, ...(patch.ssh ? {ssh: {...h.settings.ssh, ...patch.ssh}} : {})}}))
  }

  /**
   * `vdrep config`: the settings replaced in place; the bitmaps, index and commit chain stay, so
   * the next push is still a delta. `rebind` (a target naming another replica): the record's
   * replica binding is reset (a new replica id, no sequence, no commit chain) and the next sync
   * is a full sync that says why (TARGET_CHANGED): a delta never goes to another replica.
   */
  async changeSettings(settings: ReplicationSettings, rebind?: {replicaId: Buffer}): Promise<void> {
    await this.patch((h) => (rebind ? rebindFields(h, settings, rebind.replicaId) : {settings}))
  }

  /** The index is rewritten as a full sync goes; until its proof passes it is not trusted. */
  async beginFullSync(): Promise<void> {
    if (this.header.flags & HeaderFlag.INDEX_VALID) await this.patch((h) => ({flags: h.flags & ~HeaderFlag.INDEX_VALID}))
  }

  async writeIndexRun(firstBlock: number, hashes: Buffer): Promise<void> {
    this.checkWritable()
    await this.psf.writeIndexPages(firstBlock, hashes)
  }

  /**
   * The full sync's proof passed: generation + 1, the replica's sequence adopted, the index
   * trusted, NEEDS_FULL_SYNC gone. With a stamp (no tracker) both bitmaps are cleared first and
   * the stamp recorded as a clean point; a tracker clears what the sync proved itself.
   */
  async provedSync(p: ProvedSync): Promise<void> {
    this.checkWritable()
    await this.psf.sync() // the index pages written during the sync
    if (p.stamp) {
      const m = await this.bitmaps()
      await clearBothMove(this.bitmapStore, m.active, m.inflight)
      m.activeBad = []
      m.inflightBad = []
    }
    await this.patch((h) => provedFields(h, p))
  }

  /** provedSync of a disk that grew (no tracker): a new layout with the whole index, swapped in. */
  async provedSyncResized(p: ProvedSync & {index: Buffer}): Promise<void> {
    this.checkWritable()
    const fields = provedFields(this.header, p)
    await relayout(this.psf, {header: {...this.header, ...fields, flags: fields.flags & ~HeaderFlag.INDEX_VALID}, index: p.index})
    this.maps = null
    // INDEX_VALID only once the index pages are durable (relayout synced them).
    await this.patch((h) => ({flags: h.flags | HeaderFlag.INDEX_VALID}))
  }

  private checkWritable(): void {
    if (!this.writable) throw new Error(`${this.psf.path} is open read-only: only its owner writes it`)
  }

  /** One header write (older slot, sync, read back) on the header as it is, one at a time. */
  private patch(fields: (h: PsfHeader) => Partial<PsfHeader>): Promise<PsfHeader> {
    this.checkWritable()
    const run = () => this.psf.updateHeader(fields)
    const p = this.chain.then(run, run)
    this.chain = p.catch(() => {})
    return p
  }
}
