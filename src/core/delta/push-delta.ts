// The delta of one push, once the change record is trusted: the hello (compression offered,
// an older receiver asked again without it), the freeze at one point in time between the
// hooks, the bundle, the receiver's commit, then the record brought up to date.
import {asVdrepError, ProtocolError, TransportError} from '../errors.js'
import {HelloFlag} from '../protocol/messages.js'
import {SourceDisk} from '../disk/source-disk.js'
import type {DiskStamp} from '../psf/disk-stamp.js'
import {FrameType, PROTOCOL_VERSION} from '../protocol/frame.js'
import {decodeCommitted, decodeHelloOk, SyncMode} from '../protocol/messages.js'
import {parseTarget} from '../target/target.js'
import {sendBundle} from './sender.js'
import {type RecordClaim} from '../change-record/claim.js'
import {freezeWithoutTracker, freezeWithTracker, type FrozenSet} from './frozen-set.js'
import type {ChangeRecord} from '../change-record/change-record.js'
import {runHook} from '../sync/hooks.js'
import {phaseEvent} from '../sync/progress.js'
import {helloRefused, remoteErrorOf} from '../fullsync/client-replies.js'
import {throttleFor} from '../sync/throttle.js'
import {helloFlags, newCommitId} from '../fullsync/plan.js'
import {compressOffer, sessionCompression} from '../compress/negotiate.js'
import {encodeClientHello} from '../protocol/client-hello.js'

import {closeQuietly, dropConnection, startConnecting, type Connecting} from './connecting.js'
import type {PushOptions, PushResult} from './push.js'

/**
 * `stampAtCheck` (no tracker): the disk's stamp that the change record was just checked against.
 * It, not a stat taken later, is what the commit records as the clean point: a write between
 * the check and the freeze (during the login, the hello, a pre-hook that flushes a guest) is
 * in neither the frozen set nor the record, and a later stamp would hide it from every push
 * after. With it, the next push sees that write and asks for a scan or a full sync.
 */
export async function pushDelta(
  disk: string,
  claim: RecordClaim,
  source: SourceDisk,
  connecting: Connecting,
  opts: PushOptions,
  startupMs: number,
  started: number,
  stampAtCheck?: DiskStamp,
): Promise<PushResult> {
  const {record, tracker, writer: owner, owned} = claim
  const h = record.header
  const target = h.settings.target
  try {
    if (owned) await owned.mergeLeftoverInflight()
  } catch (err) {
    await dropConnection(connecting)
    throw err
  }
  const t0 = connecting.startedMs
  let conn = await connecting.conn
  let reader = conn.frames
  let writer = conn.writer
  let frozen: FrozenSet | undefined
  let committed = false
  let closing: Promise<void> | undefined
  let z: ReturnType<typeof sessionCompression> | undefined
  try {
    const commitId = newCommitId()
    const setting = opts.compress ?? h.settings.compress ?? 'auto'
    let offer = compressOffer(setting, parseTarget(target))
    const sendHello = () =>
      writer.send(
        FrameType.HELLO,
        encodeClientHello(h, {
          mode: SyncMode.DELTA,
          diskSize: source.size,
          // The fence flags only let the receiver answer "full sync needed" instead of refusing: the full sync that follows carries them too.
          flags: helloFlags({takeOverReplica: opts.takeOverReplica, discardReplicaChanges: opts.discardReplicaChanges}) | (opts.final ? HelloFlag.FINAL : 0),
          codecs: offer.codecs,
          nextCommit: commitId,
          path: conn.replicaPath,
        }),
      )
    await sendHello()
    let first = await reader.next()
    if (first?.type === FrameType.ERROR && offer.codecs.length > 0 && remoteErrorOf(first.payload).peerCode === 'BAD_FLAGS') {
      // An older receiver refuses the offer's flag: ask again without it, and send raw.
      opts.log?.('the replica host does not know compression (an older vdrep): sending raw', 'notice')
      offer = {codecs: [], why: 'the replica host runs a vdrep without compression (it refused the offer)'}
      await closeQuietly(conn)
      conn = await startConnecting(h, opts).conn
      reader = conn.frames
      writer = conn.writer
      await sendHello()
      first = await reader.next()
    }
    if (!first) throw new TransportError('RECEIVER_CLOSED', 'the replica host closed the connection during the hello')
    if (first.type === FrameType.ERROR) {
      const e = await helloRefused(first.payload, owner)
      if (e.code === 'FULL_SYNC_NEEDED') return fallback(disk, target, e.peerMessage)
      throw e
    }
    if (first.type !== FrameType.HELLO_OK) throw new ProtocolError('FRAME_UNEXPECTED', `expected HELLO_OK, got frame type ${first.type}`)
    const ok = decodeHelloOk(first.payload, offer.codecs.length > 0)
    if (ok.version !== PROTOCOL_VERSION)
      throw new ProtocolError('VERSION_MISMATCH', `the receiver speaks protocol version ${ok.version}; this client speaks ${PROTOCOL_VERSION}`, {
        hint: 'install the same vdrep release on both hosts',
      })
    const connectMs = performance.now() - t0
    let lastSeq = h.lastSeq
    if (ok.lastSeq !== lastSeq) {
      // The client died after the receiver committed: finish that push's bookkeeping.
      if (h.pendingSeq !== 0 && ok.lastSeq === h.pendingSeq) {
        opts.log?.(`the replica already committed sequence ${ok.lastSeq}; recording it`)
        await owner.adoptCommitted(ok.lastSeq)
        lastSeq = ok.lastSeq
      } else return fallback(disk, target, `replica sequence mismatch (replica at ${ok.lastSeq}, this disk's record at ${lastSeq})`)
    }
    const seq = lastSeq + 1
    // A flag wins over the disk's settings (`vdrep config DISK pre-hook ...`).
    const preHook = opts.preHook ?? h.settings.preHook
    const postHook = opts.postHook ?? h.settings.postHook
    if (preHook) await runHook(preHook, 'pre', disk)
    const pointInTime = Date.now()
    opts.progress?.(phaseEvent('freeze'))
    try {
      frozen = tracker ? await freezeWithTracker(tracker) : await freezeWithoutTracker(owned as ChangeRecord, source, source.size)
    } finally {
      if (postHook) await runHook(postHook, 'post', disk)
    }
    await owner.beginCommit(seq)
    opts.progress?.(phaseEvent('send', frozen.bitmap.count()))
    const throttle = throttleFor(h, opts)
    z = sessionCompression(setting, offer, ok.codec, writer, h.blockSize, throttle)
    const stats = await sendBundle(frozen, seq, source.size, h.blockSize, h.hashAlgo, h.replicaId, writer, throttle, z.sender)
    opts.progress?.(phaseEvent('commit'))
    const reply = await reader.next()
    if (!reply) throw new TransportError('RECEIVER_CLOSED', 'the replica host closed the connection before committing the bundle')
    if (reply.type === FrameType.ERROR) throw remoteErrorOf(reply.payload)
    if (reply.type !== FrameType.COMMITTED) throw new ProtocolError('FRAME_UNEXPECTED', `expected COMMITTED, got frame type ${reply.type}`)
    const c = decodeCommitted(reply.payload)
    if (c.seq !== seq) throw new ProtocolError('SEQUENCE_MISMATCH', `the replica committed sequence ${c.seq}, expected ${seq}`)
    committed = true
    // The replica has it: hang up now, while the record is brought up to date (the SSH close
    // handshake then costs no time of its own).
    writer.end()
    closing = closeQuietly(conn)
    await owner.storeBlockHashes(stats.hashes)
    // The commit below syncs the file, the cleared in-flight pages with it: if we die before
    // that, pendingSeq names this push and the next one records it (blocks still in flight
    // then go back to the active record and are sent again: harmless).
    await frozen.complete(true, {syncLater: true})
    await owner.commit({seq, pointInTimeMs: pointInTime, diskSize: source.size, commitId, stamp: stampAtCheck, final: opts.final})
    return {
      disk,
      target,
      mode: 'delta',
      seq,
      blocks: stats.blocks,
      zeroBlocks: stats.zeroBlocks,
      bytesSent: stats.bytesSent,
      wireBytes: stats.wireBytes,
      compression: {...z.report, ...(z.sender ? {stats: z.sender.stats()} : {})},
      seconds: (performance.now() - started) / 1000,
      phases: {startupMs, connectMs, readMs: stats.readMs, sendMs: stats.sendMs, journalMs: c.journalMs, applyMs: c.applyMs},
      ...(opts.final ? {final: true} : {}),
    }
  } catch (err) {
    if (frozen && !committed) await frozen.complete(false).catch(() => {})
    // The connection's own failures are already TransportErrors (frame reader and writer);
    // anything else failed on this host and is reported as such, not as a cut connection.
    throw asVdrepError(err)
  } finally {
    await (closing ?? closeQuietly(conn))
    await z?.sender?.close()
  }

  function fallback(d: string, t: string, reason: string): PushResult {
    return {disk: d, target: t, mode: 'fullsync', reason, blocks: 0, zeroBlocks: 0, bytesSent: 0, seconds: 0}
  }
}
