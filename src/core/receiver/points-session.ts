// The receiver's side of the restore-point query (mode POINTS on the delta port): the client
// that owns a replica (its HELLO's replica id is the one in the replica's state) gets the
// replica's points, as `vdrep points` lists them on the replica host, and may set their
// retention. Listing reads only: it takes no lock, so it never waits for a push nor holds one
// up. Setting retention takes the replica lock, as on the replica host (points/settings.ts).
// ROOM (vdrep check) is answered to any client, before anyone owns the replica (room-answer.ts).
import {ProtocolError, ReplicaForeignError, StateError} from '../errors.js'
import {FrameType} from '../protocol/frame.js'
import type {FrameSource} from '../protocol/frame-reader.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import type {Hello} from '../protocol/messages.js'
import {decodePointsRequest, encodePointsList, MAX_POINTS_LIST, PointsOp, type PointsList} from '../protocol/points-messages.js'
import {listPoints, type PointsListing} from '../points/list.js'
import {recordSource, setRetention} from '../points/settings.js'
import {readReplicaState} from './replica-state.js'
import {encodeRoomInfo} from '../protocol/room-messages.js'
import {roomFor} from './room-answer.js'
import type {SessionLog} from './session-log.js'
import {lastTestOf} from '../test-view/record.js'
import type {TestRecord} from './replica-state.js'

/** The replica is this client's: it has vdrep state, and that state names the hello's replica id. */
export async function checkPointsOwner(hello: Hello, replica: string): Promise<void> {
  const {state, error} = await readReplicaState(replica)
  if (error) throw error
  if (!state) throw new StateError('POINT_UNTRUSTED', `${replica} has no vdrep state: it was never synced from this disk`)
  if (state.replicaId !== hello.replicaId.toString('hex')) {
    // Nothing about another source's replica is told beyond that it is not this one's.
    throw new ReplicaForeignError(`${replica} belongs to another source (its replica id differs); its restore points are not listed to this disk`)
  }
}

export function listingToWire(l: PointsListing, dropped: number[] = [], tests?: TestRecord[]): PointsList {
  const points = l.points.slice(0, MAX_POINTS_LIST)
  return {
    lastSeq: l.points[0]?.seq ?? 0,
    totalBytes: l.totalBytes,
    omitted: l.points.length - points.length,
    retention: l.retention,
    untrusted: l.untrusted ?? '',
    problem: l.problem ?? '',
    dropped: dropped.slice(-MAX_POINTS_LIST),
    points: points.map((p) => {
      const timeMs = Date.parse(p.time)
      // The record itself, not the listing's text: the client words it as the replica host does.
      const t = lastTestOf(tests, p.seq, timeMs)
      return {seq: p.seq, timeMs, bytes: p.bytes, diskSize: p.diskSize, testStartMs: t?.startedMs ?? 0, testEndMs: t?.endedMs ?? 0, current: p.current}
    }),
  }
}

export async function runPointsSession(hello: Hello, replica: string, reader: FrameSource, writer: FrameWriter, log: SessionLog): Promise<void> {
  const first = await reader.next()
  if (!first) return
  if (first.type !== FrameType.POINTS_REQUEST) throw new ProtocolError('FRAME_UNEXPECTED', `expected POINTS_REQUEST, got frame type ${first.type}`)
  const req = decodePointsRequest(first.payload)
  if (req.op === PointsOp.ROOM) {
    // Asked before there is a replica or an owner (vdrep check): reads only, tells no other source's sizes.
    await writer.send(FrameType.ROOM_INFO, encodeRoomInfo(await roomFor(hello, replica)))
    return
  }
  await checkPointsOwner(hello, replica)
  let dropped: number[] = []
  if (req.op === PointsOp.SET_RETENTION) {
    const pruned = await setRetention(replica, req.retention, Date.now(), hello.replicaId.toString('hex'))
    dropped = pruned?.dropped ?? []
    log(`retention set to ${req.retention.trim()}${dropped.length > 0 ? `; dropped point(s) ${dropped.join(', ')}` : ''}`, `points ${replica}`)
  } else if (req.op === PointsOp.DESCRIBE_SOURCE && req.source) {
    const pruned = await recordSource(replica, hello.replicaId.toString('hex'), {...req.source, retention: req.retention})
    dropped = pruned?.dropped ?? []
    log(`source ${req.source.host}:${req.source.disk} recorded${pruned ? `; retention ${req.retention.trim()} adopted` : ''}`, `points ${replica}`)
  }
  const listing = await listPoints(replica)
  const {state} = await readReplicaState(replica)
  const wire = listingToWire(listing, dropped, state?.tests)
  // No point listed (an incomplete replica): lastSeq is still the state's.
  if (listing.points.length === 0) wire.lastSeq = state?.lastSeq ?? 0
  await writer.send(FrameType.POINTS_LIST, encodePointsList(wire))
}
