// A block device as the replica. Its size is the device's (fstat says 0 for one) and fixed: it
// is never truncated, so a device smaller than the source is refused before anything is
// written, and a larger one is fine (only its first diskSize bytes are the replica; the rest
// is never read or written). It is opened with an exclusive claim (disk/device-claim.ts): a
// mounted device is refused, and no mount can take it while the receiver writes.
import type fs from 'node:fs/promises'
import {constants} from 'node:fs'
import {UsageError} from '../errors.js'
import {openDeviceExclusive} from '../disk/device-claim.js'
import {blockDeviceSize} from '../native/block-device.js'

export interface ReplicaExtent {
  /** Bytes the replica holds now: the file's size, or the device's. */
  size: number
  /** A block device: fixed size, never truncated or grown. */
  device: boolean
}

export async function replicaExtent(fh: fs.FileHandle): Promise<ReplicaExtent> {
  const st = await fh.stat()
  return st.isBlockDevice() ? {size: blockDeviceSize(fh.fd), device: true} : {size: st.size, device: false}
}

/** Refuse a device replica that cannot hold the source disk (REPLICA_DEVICE_TOO_SMALL, exit 2). */
export function checkDeviceHolds(replicaPath: string, extent: ReplicaExtent, diskSize: number): void {
  if (!extent.device || extent.size >= diskSize) return
  throw new UsageError(
    'REPLICA_DEVICE_TOO_SMALL',
    `the replica ${replicaPath} is a block device of ${extent.size} bytes, smaller than the source disk (${diskSize} bytes); nothing was written`,
    {hint: 'give a device at least as large as the source disk (a block device cannot be grown by vdrep)'},
  )
}

/** Open an existing block-device replica for writing with its exclusive claim (never through a symlink). */
export function openReplicaDevice(replicaPath: string): Promise<fs.FileHandle> {
  return openDeviceExclusive(replicaPath, 'replica', constants.O_NOFOLLOW)
}
