// One member of a group push, from its claim to its bookkeeping (push-group.ts runs them in
// step): claim the record (a tracker must run), check it can take a delta, say HELLO with the
// GROUP flag, ship the bundle of the group's cut, then wait for the group to commit before
// the receiver applies it. Anything that would make `vdrep push` fall back to a full sync
// refuses the group push instead: a group point is a delta of every member.
import path from 'node:path'
import {ProtocolError, TransportError, UsageError, VdrepError} from '../errors.js'
import {claimRecord, type RecordClaim} from '../change-record/claim.js'
import {canVerify, curedByVerification} from '../change-record/doubt.js'
import {checkOpenedDisk} from '../change-record/identity.js'
import {acquireDiskLock, type HeldLock} from '../locks/index.js'
import {SourceDisk} from '../disk/source-disk.js'
import {closeQuietly, dropConnection, startConnecting, type Connecting} from '../delta/connecting.js'
import type {PushOptions} from '../delta/push.js'
import type {FrozenSet} from '../delta/frozen-set.js'
import {sendBundle, type BundleStats} from '../delta/sender.js'
import {FrameType} from '../protocol/frame.js'
import {decodeCommitted, decodeHelloOk, HelloFlag, SyncMode, type Committed} from '../protocol/messages.js'
import {decodeJournaled} from '../protocol/group-messages.js'
import {helloRefused, remoteErrorOf} from '../fullsync/client-replies.js'
import {newCommitId} from '../fullsync/plan.js'
import {parseTarget} from '../target/target.js'
import {Throttle} from '../sync/throttle.js'
import type {Carrier} from '../transport/carrier.js'
import type {TrackerControlClient} from '../tracker/control-client.js'
import type {Frame} from '../protocol/frame-reader.js'
import {encodeClientHello} from '../protocol/client-hello.js'
import {compressOffer, sessionCompression, type CompressionReport, type CompressOffer} from '../compress/negotiate.js'
import type {CompressSetting} from '../compress/policy.js'
import type {RunSender} from '../compress/run-sender.js'

export class GroupMember {
  conn: Carrier | null = null
  seq = 0
  readonly commitId = newCommitId()
  frozen: FrozenSet | null = null
  stats: BundleStats | null = null
  committed: Committed | null = null
  private connecting: Connecting | null = null
  private source: SourceDisk | null = null
  /** Compression as agreed in the hello (the same rules as a lone push: compress/negotiate.ts). */
  private setting: CompressSetting = 'auto'
  private offer: CompressOffer = {codecs: []}
  private picked: number | undefined
  private z: {sender?: RunSender; report: CompressionReport} | null = null

  private constructor(
    readonly disk: string,
    private readonly lock: HeldLock,
    readonly claim: RecordClaim,
  ) {}

  get tracker(): TrackerControlClient {
    return this.claim.tracker as TrackerControlClient
  }

  get target(): string {
    return this.claim.record.header.settings.target
  }

  /** Lock the disk, claim its record; refuse a disk of another group or one without a tracker. */
  static async claim(disk: string, group: string): Promise<GroupMember> {
    const lock = await acquireDiskLock(disk, 'push --group')
    let claim: RecordClaim | undefined
    try {
      claim = await claimRecord(disk, 'push', {lockHeld: true})
      const own = claim.record.header.settings.group
      if (own !== undefined && own !== group)
        throw new UsageError('GROUP_MEMBER_OTHER_GROUP', `${disk} belongs to group ${own}, not ${group}; nothing was sent`, {
          hint: `push it with --group ${own}, or give it another group with \`vdrep init --group\``,
        })
      if (!claim.tracker)
        throw new UsageError(
          'GROUP_NO_TRACKER',
          `${disk} has no running tracker: a group push needs every member's writes held for one instant (--scan gives no point in time)`,
          {
            hint: 'run `vdrep track <disk> --nbd ...` for every member, or push the disk alone',
          },
        )
      return new GroupMember(disk, lock, claim)
    } catch (err) {
      await claim?.release().catch(() => {})
      await lock.release().catch(() => {})
      throw err
    }
  }

  /** The receiver a member's commit goes through: members must share one to commit as a unit. */
  receiverKey(): string {
    const s = this.claim.record.header.settings
    const t = parseTarget(s.target)
    if (t.kind === 'local') return `local:${path.dirname(t.path)}`
    return `ssh:${s.ssh?.user ?? t.user ?? ''}@${t.host}:${t.port ?? s.ssh?.port ?? 22}:${s.deltaPort}`
  }

  /** The record can take a delta (else the group push is refused), then HELLO with the GROUP flag. */
  async open(opts: PushOptions): Promise<void> {
    const {record} = this.claim
    const h = record.header
    this.connecting = startConnecting(h, opts)
    this.source = await SourceDisk.open(this.disk)
    const st = await this.source.stat()
    checkOpenedDisk(record, this.disk, st, this.source.size, {trackerRunning: true})
    const doubts = record.doubts({size: this.source.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs}, {trackerRunning: true})
    // The tracker checks a source in doubt behind its export; its freeze (the cut) waits for that.
    if (doubts.length > 0 && !(doubts.every(curedByVerification) && canVerify(h))) throw this.needsFullSync(doubts[0].message)
    this.conn = await this.connecting.conn
    this.setting = opts.compress ?? h.settings.compress ?? 'auto'
    this.offer = compressOffer(this.setting, parseTarget(h.settings.target))
    // A receiver that knows GROUP knows COMPRESS (both came in one release): no second hello without the offer.
    await this.conn.writer.send(
      FrameType.HELLO,
      encodeClientHello(h, {
        mode: SyncMode.DELTA,
        diskSize: this.source.size,
        flags: HelloFlag.GROUP,
        codecs: this.offer.codecs,
        nextCommit: this.commitId,
        path: this.conn.replicaPath,
      }),
    )
    const first = await this.next('the hello')
    if (first.type === FrameType.ERROR) {
      const e = await helloRefused(first.payload, this.claim.writer)
      if (e.code === 'FULL_SYNC_NEEDED') throw this.needsFullSync(e.peerMessage)
      throw e
    }
    if (first.type !== FrameType.HELLO_OK) throw new ProtocolError('FRAME_UNEXPECTED', `expected HELLO_OK, got frame type ${first.type}`)
    const ok = decodeHelloOk(first.payload, this.offer.codecs.length > 0)
    this.picked = ok.codec
    let lastSeq = h.lastSeq
    if (ok.lastSeq !== lastSeq) {
      // The client died after the receiver committed (a group applied by recovery): record it.
      if (h.pendingSeq !== 0 && ok.lastSeq === h.pendingSeq) {
        opts.log?.(`${this.disk}: the replica already committed sequence ${ok.lastSeq}; recording it`)
        await this.claim.writer.adoptCommitted(ok.lastSeq)
        lastSeq = ok.lastSeq
      } else throw this.needsFullSync(`replica sequence mismatch (replica at ${ok.lastSeq}, this disk's record at ${lastSeq})`)
    }
    this.seq = lastSeq + 1
  }

  /** Ship this member's frozen set; the receiver journals it and holds it (JOURNALED). */
  async ship(frozen: FrozenSet, opts: PushOptions): Promise<void> {
    this.frozen = frozen
    const h = this.claim.record.header
    const size = (this.source as SourceDisk).size
    await this.claim.writer.beginCommit(this.seq)
    const conn = this.conn as Carrier
    const throttle = new Throttle(opts.bwlimitBytesPerSecond ?? 0)
    this.z = sessionCompression(this.setting, this.offer, this.picked, conn.writer, h.blockSize, throttle)
    this.stats = await sendBundle(frozen, this.seq, size, h.blockSize, h.hashAlgo, h.replicaId, conn.writer, throttle, this.z.sender)
    const reply = await this.expect(FrameType.JOURNALED, 'the bundle to be journaled')
    const seq = decodeJournaled(reply.payload)
    if (seq !== this.seq) throw new ProtocolError('SEQUENCE_MISMATCH', `the replica holds sequence ${seq} of ${this.disk}, expected ${this.seq}`)
  }

  /** The group committed: the receiver applies this member's bundle (COMMITTED), then the record is brought up to date. */
  async finish(pointInTimeMs: number): Promise<void> {
    const c = decodeCommitted((await this.expect(FrameType.COMMITTED, 'the member to be applied')).payload)
    if (c.seq !== this.seq) throw new ProtocolError('SEQUENCE_MISMATCH', `the replica committed sequence ${c.seq} of ${this.disk}, expected ${this.seq}`)
    this.committed = c
    await this.claim.writer.storeBlockHashes((this.stats as BundleStats).hashes)
    await (this.frozen as FrozenSet).complete(true)
    await this.claim.writer.commit({seq: this.seq, pointInTimeMs, diskSize: (this.source as SourceDisk).size, commitId: this.commitId})
  }

  /** What the member's bundle travelled as, for the result. */
  compression(): CompressionReport | undefined {
    return this.z ? {...this.z.report, ...(this.z.sender ? {stats: this.z.sender.stats()} : {})} : undefined
  }

  async expect(type: number, what: string): Promise<Frame> {
    const f = await this.next(what)
    if (f.type === FrameType.ERROR) throw remoteErrorOf(f.payload)
    if (f.type !== type) throw new ProtocolError('FRAME_UNEXPECTED', `expected frame type ${type} while waiting for ${what}, got ${f.type}`)
    return f
  }

  /** Not committed: the frozen blocks go back to the record (sent again next time); then let go of everything. */
  async close(ok: boolean): Promise<void> {
    if (!ok || !this.committed) await this.frozen?.complete(false).catch(() => {})
    if (this.conn) {
      if (!ok) this.conn.abort()
      await closeQuietly(this.conn)
    } else if (this.connecting) await dropConnection(this.connecting)
    await this.z?.sender?.close().catch(() => {})
    await this.source?.close().catch(() => {})
    await this.claim.release().catch(() => {})
    await this.lock.release().catch(() => {})
  }

  private async next(what: string): Promise<Frame> {
    const f = await (this.conn as Carrier).frames.next()
    if (!f) throw new TransportError('RECEIVER_CLOSED', `the replica host closed the connection of ${this.disk} while waiting for ${what}`)
    return f
  }

  private needsFullSync(why: string): VdrepError {
    return new VdrepError('GROUP_MEMBER_FULL_SYNC', `${this.disk} cannot take a delta (${why}); a group push ships deltas only, nothing was sent`, {
      hint: `run \`vdrep push ${this.disk}\` (it falls back to a full sync), then push the group again`,
    })
  }
}
