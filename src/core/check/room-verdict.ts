// What `vdrep check` says about the replica path and its room, from the receiver's ROOM_INFO
// (or, for a local target, the same facts read here): whose replica is there, and whether its
// filesystem can take the disk. A new replica is written sparse, so zeros take no room; but a
// full disk is the worst case, and a replica host that fills up mid-sync stops the sync.
import {RoomFlag, RoomReplica, type RoomInfo} from '../protocol/room-messages.js'
import {formatBytes} from '../util/units.js'
import type {Checklist} from './checklist.js'

export function roomVerdict(room: RoomInfo, diskSize: number, replica: string, list: Checklist): void {
  const device = (room.flags & RoomFlag.DEVICE) !== 0
  switch (room.replica) {
    case RoomReplica.MISSING:
      list.ok('replica-path', `${replica} is allowed; no replica there yet (the first full sync creates it)`)
      break
    case RoomReplica.THIS_SOURCE:
      list.ok('replica-path', `${replica} is this disk's replica (${formatBytes(room.replicaSize)})`)
      break
    case RoomReplica.NO_STATE:
      list.warn(
        'replica-path',
        `${replica} exists without vdrep state (${formatBytes(room.replicaSize)})`,
        'the first full sync uses it as a seed (only the blocks that differ travel) and overwrites it: make sure it is a copy of this disk, or give another path',
      )
      break
    case RoomReplica.OTHER_SOURCE:
      list.fail(
        'replica-path',
        `${replica} is the replica of another source (another replica id): a sync to it is refused (exit 10)`,
        'give this disk its own replica path (vdrep init --force --to ...), or hand the replica over with vdrep fullsync --take-over-replica',
      )
      list.skip(['room'], 'the replica belongs to another source')
      return
    case RoomReplica.STATE_UNREADABLE:
      list.fail(
        'replica-path',
        `${replica} has a vdrep state file that cannot be read`,
        `look at ${replica}.vdrep on the replica host (vdrep replicas --root ...)`,
      )
      list.skip(['room'], 'the replica state is damaged')
      return
  }
  if (device) {
    if (room.replicaSize === 0) list.warn('room', `${replica} is a block device whose size the receiver could not read`)
    else if (room.replicaSize >= diskSize) list.ok('room', `the block device holds ${formatBytes(room.replicaSize)}, the disk needs ${formatBytes(diskSize)}`)
    else
      list.fail(
        'room',
        `the block device holds ${formatBytes(room.replicaSize)}, less than the disk's ${formatBytes(diskSize)}`,
        'give a device at least as large as the disk',
      )
    return
  }
  // What the replica may still take: the disk's size, less what its file already holds.
  const need = Math.max(0, diskSize - room.replicaAllocated)
  const free = `${formatBytes(room.freeBytes)} free of ${formatBytes(room.totalBytes)}`
  if (room.freeBytes >= need) list.ok('room', `${free}; the replica needs up to ${formatBytes(need)} more (less where the disk holds zeros)`)
  else
    list.fail(
      'room',
      `${free} on the replica's filesystem; the replica may need up to ${formatBytes(need)} more (the disk is ${formatBytes(diskSize)})`,
      'free space there, or choose a replica path on a larger filesystem (a disk that is mostly zeros may still fit: it is written sparse)',
    )
}
