// The receiver's answer to POINTS_REQUEST op ROOM (protocol/room-messages.ts): what is at the
// path the hello named (resolved under the root like any replica path, so a path outside it is
// refused before this runs) and how much room its filesystem has. Reads only and takes no lock:
// `vdrep check` asks it before a first sync, when there is no replica and no owner yet. The
// sizes of another source's replica are not told, only that it is another's.
import fs from 'node:fs/promises'
import path from 'node:path'
import type {Hello} from '../protocol/messages.js'
import {RoomFlag, RoomReplica, type RoomInfo} from '../protocol/room-messages.js'
import {blockDeviceSizeOfPath} from '../native/block-device.js'
import {readReplicaState} from './replica-state.js'

export async function roomFor(hello: Hello, replica: string): Promise<RoomInfo> {
  const fsInfo = await fs.statfs(path.dirname(replica))
  const room = {freeBytes: fsInfo.bavail * fsInfo.bsize, totalBytes: fsInfo.blocks * fsInfo.bsize}
  const st = await fs.lstat(replica).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined
    throw err
  })
  if (!st) return {replica: RoomReplica.MISSING, flags: 0, replicaSize: 0, replicaAllocated: 0, ...room}
  const {state, error} = await readReplicaState(replica)
  const kind = error
    ? RoomReplica.STATE_UNREADABLE
    : !state
      ? RoomReplica.NO_STATE
      : state.replicaId === hello.replicaId.toString('hex')
        ? RoomReplica.THIS_SOURCE
        : RoomReplica.OTHER_SOURCE
  if (kind === RoomReplica.OTHER_SOURCE) return {replica: kind, flags: 0, replicaSize: 0, replicaAllocated: 0, ...room}
  if (st.isBlockDevice()) return {replica: kind, flags: RoomFlag.DEVICE, replicaSize: deviceSize(replica), replicaAllocated: 0, ...room}
  return {replica: kind, flags: 0, replicaSize: st.size, replicaAllocated: st.blocks * 512, ...room}
}

function deviceSize(device: string): number {
  try {
    return blockDeviceSizeOfPath(device)
  } catch {
    return 0 // no native addon, or no access: the client says the size is unknown
  }
}
