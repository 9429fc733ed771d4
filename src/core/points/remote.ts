// `vdrep points <disk>` on the protected host: the restore points of the disk's replica, asked
// of the receiver over the disk's target (SSH to `vdrep serve`, or the in-process receiver of a
// local path: the carrier a push uses), through the read-only POINTS query
// (protocol/points-messages.ts). The .psf is only read (its target, settings and replica id),
// never locked: a listing runs beside a push or a tracker.
import {timeoutMsOf} from '../psf/settings.js'
import os from 'node:os'
import {ProtocolError, TransportError} from '../errors.js'
import {ChangeRecord} from '../change-record/change-record.js'
import {psfPathFor} from '../psf/psf-file.js'
import {FrameType} from '../protocol/frame.js'
import {SyncMode} from '../protocol/messages.js'
import {decodePointsList, encodePointsRequest, PointsOp, type PointsList, type PointsRequest} from '../protocol/points-messages.js'
import {remoteErrorOf} from '../fullsync/client-replies.js'
import {parseTarget} from '../target/target.js'
import {connectReceiver} from '../transport/connect.js'
import type {Carrier} from '../transport/carrier.js'
import type {PointInfo, PointsListing} from './list.js'
import {parseRetention} from './retention.js'
import {describeTest} from '../test-view/record.js'
import {encodeClientHello} from '../protocol/client-hello.js'

export interface RemotePointsOptions {
  /** Set the replica's retention policy (the receiver records and applies it) before listing. */
  retention?: string
  acceptNewHostKey?: boolean
  /** --timeout: SSH targets only (transport/connect.ts). */
  timeoutMs?: number
  log?: (line: string) => void
  /**
   * Opens the connection to the receiver's delta port instead of a new login: a full sync
   * describes the source over a second channel of its own SSH connection (one round trip,
   * where a new login costs six or more; doc/protocol.md, "Round trips").
   */
  connect?: (port: number) => Promise<Carrier>
}

export interface RemotePointsListing extends PointsListing {
  /** The disk whose replica this is (the listing was asked from its host). */
  disk: string
  /** Points dropped by the retention just set. */
  dropped?: number[]
  /** Older points the receiver did not send (over the query's cap). */
  omitted?: number
}

export async function listRemotePoints(disk: string, opts: RemotePointsOptions = {}): Promise<RemotePointsListing> {
  if (opts.retention !== undefined) parseRetention(opts.retention) // refused here, before any connection
  const spec = opts.retention?.trim()
  const {target, list} = await askReceiver(disk, spec === undefined ? {op: PointsOp.LIST, retention: ''} : {op: PointsOp.SET_RETENTION, retention: spec}, opts)
  return fromWire(disk, target, list, opts.retention !== undefined)
}

/**
 * After a proved full sync: tell the receiver where the replica comes from (this host, the
 * disk's path, its RPO, for `vdrep replicas`) and the retention chosen at init, which the
 * receiver adopts only when the replica has no policy yet.
 */
export async function describeSource(disk: string, opts: RemotePointsOptions = {}): Promise<void> {
  const record = await ChangeRecord.openReadOnly(psfPathFor(disk))
  const settings = record.header.settings
  await record.close()
  await askReceiver(
    disk,
    {op: PointsOp.DESCRIBE_SOURCE, retention: settings.retention ?? '', source: {host: os.hostname(), disk, rpoSeconds: settings.rpoSeconds}},
    opts,
  )
}

/** One query over the disk's target: HELLO (mode POINTS) and the request out, POINTS_LIST (or the receiver's ERROR) back. */
async function askReceiver(disk: string, request: PointsRequest, opts: RemotePointsOptions): Promise<{target: string; list: PointsList}> {
  const record = await ChangeRecord.openReadOnly(psfPathFor(disk))
  const h = {...record.header}
  await record.close()
  const conn = opts.connect
    ? await opts.connect(h.settings.deltaPort)
    : await connectReceiver(parseTarget(h.settings.target), {
        port: h.settings.deltaPort,
        log: opts.log,
        acceptNewHostKey: opts.acceptNewHostKey,
        timeoutMs: timeoutMsOf(opts.timeoutMs, h.settings),
        ssh: h.settings.ssh,
      })
  let list: PointsList
  try {
    await conn.writer.send(
      FrameType.HELLO,
      encodeClientHello(h, {mode: SyncMode.POINTS, flags: 0, path: conn.replicaPath}), // a query commits nothing
    )
    await conn.writer.send(FrameType.POINTS_REQUEST, encodePointsRequest(request))
    const reply = await conn.frames.next()
    if (!reply) throw new TransportError('RECEIVER_CLOSED', 'the replica host closed the connection before it answered the restore-point query')
    if (reply.type === FrameType.ERROR) throw remoteErrorOf(reply.payload)
    if (reply.type !== FrameType.POINTS_LIST) throw new ProtocolError('FRAME_UNEXPECTED', `expected POINTS_LIST, got frame type ${reply.type}`)
    list = decodePointsList(reply.payload)
  } catch (err) {
    conn.abort()
    await conn.close().catch(() => {})
    throw err
  }
  await conn.close()
  return {target: h.settings.target, list}
}

function fromWire(disk: string, target: string, l: PointsList, setRetention: boolean): RemotePointsListing {
  const points: PointInfo[] = l.points.map((p) => ({
    seq: p.seq,
    time: new Date(p.timeMs).toISOString(),
    bytes: p.bytes,
    diskSize: p.diskSize,
    current: p.current,
    tested: p.testEndMs > 0 ? describeTest({seq: p.seq, pointMs: p.timeMs, startedMs: p.testStartMs, endedMs: p.testEndMs}) : null,
  }))
  const out: RemotePointsListing = {disk, replica: target, retention: l.retention, points, totalBytes: l.totalBytes}
  if (l.untrusted) out.untrusted = l.untrusted
  if (l.problem) out.problem = l.problem
  if (setRetention) out.dropped = l.dropped
  if (l.omitted > 0) out.omitted = l.omitted
  return out
}
