// `vdrep check`'s questions to a receiver, over a carrier it opened: on the delta port, a HELLO
// in mode POINTS with the request ROOM (protocol/room-messages.ts), answered with ROOM_INFO;
// on the full-sync port, the same HELLO, which a vdrep receiver refuses there with WRONG_PORT:
// proof enough that it is a vdrep receiver that answers, and nothing is locked or written.
import type {PsfHeader} from '../psf/header.js'
import {FrameType} from '../protocol/frame.js'
import {decodeError, SyncMode, type ErrorMsg} from '../protocol/messages.js'
import {encodePointsRequest, PointsOp} from '../protocol/points-messages.js'
import {decodeRoomInfo, type RoomInfo} from '../protocol/room-messages.js'
import type {Carrier} from '../transport/carrier.js'
import {encodeClientHello} from '../protocol/client-hello.js'

export type ProbeAnswer = {kind: 'room'; room: RoomInfo} | {kind: 'error'; error: ErrorMsg} | {kind: 'closed'} | {kind: 'other'; type: number}

export async function probe(conn: Carrier, header: PsfHeader, ask: boolean): Promise<ProbeAnswer> {
  await conn.writer.send(FrameType.HELLO, encodeClientHello(header, {mode: SyncMode.POINTS, flags: 0, path: conn.replicaPath}))
  if (ask) await conn.writer.send(FrameType.POINTS_REQUEST, encodePointsRequest({op: PointsOp.ROOM, retention: ''}))
  const f = await conn.frames.next()
  if (!f) return {kind: 'closed'}
  if (f.type === FrameType.ERROR) return {kind: 'error', error: decodeError(f.payload)}
  if (f.type === FrameType.ROOM_INFO) return {kind: 'room', room: decodeRoomInfo(f.payload)}
  return {kind: 'other', type: f.type}
}
