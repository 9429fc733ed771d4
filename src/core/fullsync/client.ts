// The client side of a full sync: claim the change record (its owner: the tracker, or this
// process), connect, agree on the hello, stream the disk against the replica's statuses
// (stream.ts, decisions in plan.ts), then compare whole-disk digests. Only a proved sync
// changes the change record's trust (proof.ts).
import {timeoutMsOf} from '../psf/settings.js'
import {trace} from '../util/trace.js'
import {blockHasher} from '../hash/block-hash.js'
import {SourceDisk, type ReadFault} from '../disk/source-disk.js'
import type {ChunkReader} from '../disk/chunk-reader.js'
import type {DiskStamp} from '../psf/disk-stamp.js'
import {FrameType} from '../protocol/frame.js'
import {encodeDone, ReplicaStateKind} from '../protocol/messages.js'
import {parseTarget} from '../target/target.js'
import {connectReceiver, localReceiverCarrier} from '../transport/connect.js'
import type {Carrier} from '../transport/carrier.js'
import {withCarrier, type SshCarrier} from '../psf/settings.js'
import {describeSource} from '../points/remote.js'
import {noProgress, type ProgressSink, type SyncLog, type SyncProgress} from '../sync/progress.js'
import {helloRefused, ReceiverReplies} from './client-replies.js'
import {throttleFor} from '../sync/throttle.js'
import type {SharedBudget} from '../sync/shared-budget.js'
import {settledStat} from '../psf/disk-stamp.js'
import {asVdrepError, TransportError} from '../errors.js'
import {claimRecord, type RecordClaim} from '../change-record/claim.js'
import {checkOpenedDisk} from '../change-record/identity.js'
import {checkBeforeSync, checkpointBlocks, checkTargetNotSource, helloFlags, newCommitId, resumePoint} from './plan.js'
import {checkVerdict, IndexRecorder, recordProof} from './proof.js'
import {SEED_READ_CHUNK, streamDisk} from './stream.js'
import {HeadStart} from '../disk/head-start.js'
import {exchangeHello} from './hello.js'
import type {HelloOk} from '../protocol/messages.js'
import {RemoteError} from '../errors.js'
import type {CompressSetting} from '../compress/policy.js'
import {compressOffer, sessionCompression, type CompressionReport} from '../compress/negotiate.js'

export interface FullsyncOptions {
  truncateReplica?: boolean
  /** Hand a replica that belongs to another source to this disk (the receiver refuses it otherwise). */
  takeOverReplica?: boolean
  /** Overwrite a replica that moved on without vdrep (the receiver refuses it otherwise). */
  discardReplicaChanges?: boolean
  /** Make the replica durable and record a resume point at least this often (bytes of disk). */
  checkpointBytes?: number
  /** Bytes per second this transfer may send; default: the disk's `bandwidth` setting, else none. */
  bwlimitBytesPerSecond?: number
  /** A budget shared with the other transfers of this process (`push --all --jobs N`). */
  sharedBudget?: SharedBudget
  /** Record an unknown replica host key in known_hosts (like StrictHostKeyChecking=accept-new). */
  acceptNewHostKey?: boolean
  /** --timeout: SSH targets only (transport/connect.ts). */
  timeoutMs?: number
  /** This run's SSH carrier (--ssh), over the one in the disk's settings. */
  sshCarrier?: SshCarrier
  /** Tests only: fail source reads as a failing device would (EIO at an offset). */
  sourceReadFault?: ReadFault
  /** Tests only: runs before a mapped chunk's differing blocks are read (fill), as a live disk's writes may land. */
  beforeFill?: (firstBlock: number, runs: ReadonlyArray<readonly [number, number]>) => Promise<void>
  /** The caller (push) already holds the disk lock. */
  lockHeld?: boolean
  /** Called once the sync holds the disk and starts (status/last-attempt.ts: a killed attempt is then known). */
  begun?: () => Promise<void>
  /** Compression on the wire; absent: the disk's setting (init --compress), else auto. */
  compress?: CompressSetting
  progress?: ProgressSink
  log?: SyncLog
}

export interface FullsyncResult {
  disk: string
  target: string
  bytesTotal: number
  bytesCompared: number
  bytesSent: number
  zeroBytesSkipped: number
  blocksDiffering: number
  blocksZeroed: number
  resumedAtBlock: number
  resumedPercent: number
  seconds: number
  digest: string
  hashAlgo: string
  /** Bytes of DATA and DATA_Z payloads (fields included) that went on the wire. */
  wireBytes: number
  compression: CompressionReport
}

export async function fullsync(disk: string, opts: FullsyncOptions = {}): Promise<FullsyncResult> {
  const started = performance.now()
  const claim = await claimRecord(disk, 'fullsync', {lockHeld: opts.lockHeld})
  try {
    trace('fullsync: claimed')
    await opts.begun?.()
    if (claim.bound) opts.log?.(claim.bound, 'notice')
    const source = await SourceDisk.open(disk, opts.sourceReadFault)
    trace('fullsync: source open')
    try {
      checkOpenedDisk(claim.record, disk, await source.stat(), source.size, {trackerRunning: claim.tracker !== null})
      const {result, described} = await runFullsync(disk, claim, source, opts, started)
      // A local target's receiver is told once the sync's own receiver has finished.
      if (!described) await describeSourceQuietly(disk, opts)
      return result
    } finally {
      await source.close()
    }
  } finally {
    await claim.release()
  }
}

async function runFullsync(
  disk: string,
  claim: RecordClaim,
  source: SourceDisk,
  opts: FullsyncOptions,
  started: number,
): Promise<{result: FullsyncResult; described: boolean}> {
  const {record, tracker} = claim
  const h = record.header
  checkBeforeSync(disk, h, source.size, tracker !== null, opts.truncateReplica === true)
  const target = parseTarget(h.settings.target)
  if (target.kind === 'local') checkTargetNotSource(disk, target.path)
  const hasher = blockHasher(h.hashAlgo, h.replicaId)
  const bs = h.blockSize
  const diskSize = source.size
  const blockCount = Math.ceil(diskSize / bs)
  const progress = opts.progress ?? noProgress
  const p: SyncProgress = {phase: 'connect', bytesTotal: diskSize, bytesCompared: 0, bytesSent: 0, bytesDurable: 0}
  progress(p)

  // The stamp before reading: if anything but a tracker writes the disk during or after the
  // sync, its mtime moves past this and the next push knows the change record missed it.
  // Kept (the clean point of the proof) only without a tracker.
  const st = tracker ? undefined : await settledStat(() => source.stat())
  const stampAtStart: DiskStamp | undefined = st && {size: diskSize, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs}
  const connect = () =>
    connectReceiver(target, {
      port: h.settings.fullsyncPort,
      log: opts.log,
      acceptNewHostKey: opts.acceptNewHostKey,
      timeoutMs: timeoutMsOf(opts.timeoutMs, h.settings),
      ssh: withCarrier(h.settings.ssh, opts.sshCarrier),
    })
  const setting = opts.compress ?? h.settings.compress ?? 'auto'
  let offer = compressOffer(setting, target)
  // With a tracker running, the sync covers what was dirty when it began; writes made while it
  // runs stay in the active record for the next push. Frozen before the head start hashes a
  // block: a write that lands after a block was hashed must stay in the active record.
  const frozen = tracker ? await tracker.freeze({preserve: false}) : undefined
  // The source's checksums start now, while the login and the HELLO take their round trips
  // (disk/head-start.ts); a missing replica (every block travels, read, not mapped) drops them.
  const early = HeadStart.start(source, diskSize, bs, SEED_READ_CHUNK, hasher)
  let conn: Carrier
  try {
    conn = await connect()
  } catch (err) {
    await early?.stop()
    if (frozen) await tracker?.complete(false).catch(() => {})
    throw err
  }
  let proved = false
  let reader = conn.frames
  let writer = conn.writer
  let replies: ReceiverReplies | undefined
  let chunks: ChunkReader | undefined
  let z: ReturnType<typeof sessionCompression> | undefined
  try {
    const commitId = newCommitId()
    const owner = claim.writer
    const hello = () =>
      exchangeHello({
        reader,
        writer,
        path: conn.replicaPath,
        header: h,
        diskSize,
        flags: helloFlags(opts),
        nextCommit: commitId,
        codecs: offer.codecs,
        refused: (payload) => helloRefused(payload, owner),
      })
    let ok: HelloOk
    try {
      ok = await hello()
    } catch (err) {
      if (!(offer.codecs.length > 0 && err instanceof RemoteError && err.peerCode === 'BAD_FLAGS')) throw err
      // An older receiver refuses the offer's flag: ask again without it, and send raw.
      opts.log?.('the replica host does not know compression (an older vdrep): sending raw', 'notice')
      offer = {codecs: [], why: 'the replica host runs a vdrep without compression (it refused the offer)'}
      conn.abort()
      await conn.close().catch(() => {})
      conn = await connect()
      reader = conn.frames
      writer = conn.writer
      ok = await hello()
    }
    const throttle = throttleFor(h, opts)
    z = sessionCompression(setting, offer, ok.codec, writer, bs, throttle)
    const resumedAtBlock = resumePoint(ok.state, ok.resumeBlock)
    if (resumedAtBlock > 0)
      opts.log?.(
        `resuming at ${Math.floor((resumedAtBlock / blockCount) * 100)}% (block ${resumedAtBlock} of ${blockCount} is durable on the replica)`,
        'notice',
      )
    const index = new IndexRecorder(claim, blockCount, diskSize !== h.diskSize)
    await index.begin()
    replies = new ReceiverReplies(reader, (upto) => {
      // The receiver has written, synced and re-read everything below `upto`: buffers lent to
      // the transport for those blocks are free again.
      chunks?.releaseUpTo(upto)
      p.bytesDurable = Math.min(diskSize, upto * bs)
      progress(p)
    })
    const digest = hasher.createStream()
    const replicaMissing = ok.state === ReplicaStateKind.MISSING
    if (replicaMissing) await early?.stop()
    p.phase = 'compare'
    const totals = await streamDisk({
      source,
      diskSize,
      bs,
      blockCount,
      hasher,
      writer,
      replies,
      index,
      digest,
      p,
      progress,
      throttle,
      runs: z.sender,
      checkpointEvery: checkpointBlocks(opts.checkpointBytes, bs),
      replicaMissing,
      headStart: replicaMissing ? undefined : early,
      alignedChunks: target.kind === 'local' && localReceiverCarrier() === 'inline',
      onChunks: (c) => {
        chunks = c
        // Chunks lent to the transport come back only at the receiver's acks: a receiver given up
        // (--timeout, a cut connection) fails the reader's wait for room instead of leaving it forever.
        replies?.whenFailed((err) => c.abort(err))
      },
      beforeFill: opts.beforeFill,
    })
    // Before the proof can mark the replica complete: a source cut short under the sync had
    // its missing end read as holes, so the replica would be proved equal to zeros.
    await source.checkNotShrunk()
    const ourDigest = digest.digest()
    p.phase = 'verify'
    progress(p)
    await writer.send(FrameType.DONE, encodeDone({blockCount, digest: ourDigest}))
    // The source description (sent once proved, never trusted, beside the proof's record): an
    // OpenSSH login opens while the receiver verifies, an ssh2 channel after (doc/protocol.md, Round trips).
    const secondLogin = conn.siblingLogsIn ? conn.sibling?.(h.settings.deltaPort) : undefined
    secondLogin?.catch(() => {})
    checkVerdict(await replies.verifyResult(), ourDigest)
    trace('fullsync: verdict')
    writer.end()
    const describeConn = secondLogin ?? conn.sibling?.(h.settings.deltaPort)
    const described = describeConn !== undefined
    const describing = describeConn ? describeSourceQuietly(disk, opts, () => describeConn) : undefined
    await recordProof(claim, index, {diskSize, replicaSeq: ok.lastSeq, commitId, stamp: stampAtStart}).finally(() => describing)
    proved = true
    trace('fullsync: proof recorded')
    await tracker?.complete(true)
    p.phase = 'done'
    progress(p)
    const result: FullsyncResult = {
      disk,
      target: h.settings.target,
      bytesTotal: diskSize,
      bytesCompared: diskSize,
      bytesSent: p.bytesSent,
      ...totals,
      resumedAtBlock,
      resumedPercent: Math.floor((resumedAtBlock / blockCount) * 100),
      seconds: (performance.now() - started) / 1000,
      digest: ourDigest.toString('hex'),
      hashAlgo: hasher.name,
      wireBytes: totals.wireBytes,
      compression: {...z.report, ...(z.sender ? {stats: z.sender.stats()} : {})},
    }
    return {result, described}
  } catch (err) {
    if (frozen && !proved) await tracker?.complete(false).catch(() => {})
    if (replies && err instanceof TransportError) throw await replies.explain(err)
    throw err
  } finally {
    // Nothing of the head start may still run on the source's descriptor when it is closed.
    await early?.stop()
    conn.abort()
    await conn.close().catch(() => {})
    await z?.sender?.close()
    trace('fullsync: connection closed')
  }
}

/**
 * The replica is proved: tell the receiver where it comes from and the retention chosen at
 * init (points/remote.ts). The sync stands whatever happens here; a failure is only said.
 */
async function describeSourceQuietly(disk: string, opts: FullsyncOptions, connect?: (port: number) => Promise<Carrier>): Promise<void> {
  try {
    await describeSource(disk, {acceptNewHostKey: opts.acceptNewHostKey, timeoutMs: opts.timeoutMs, log: opts.log, ...(connect ? {connect} : {})})
  } catch (err) {
    opts.log?.(`the replica is proved, but its host was not told where it comes from (vdrep replicas shows no source): ${asVdrepError(err).message}`, 'notice')
  }
}
