// Where a tracked disk's companions live: the control socket (beside the disk's .psf, or under
// /run/vdrep when that path is too long for a unix socket) and the copy-on-write side file,
// beside the .psf too (in the state folder for a block device: psf/state-location.ts).
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {statePathFor} from '../psf/state-location.js'

/** Longest control-socket path kept beside the disk (sun_path holds 107 bytes plus NUL). */
export const MAX_BESIDE_SOCKET_PATH = 100
/** Where sockets go when the path beside the disk is too long. */
export const RUN_DIR = '/run/vdrep'

/** The disk's canonical path (symlinks resolved), so every command names the same socket. */
export async function canonicalDisk(disk: string): Promise<string> {
  const abs = path.resolve(disk)
  try {
    return await fs.realpath(abs)
  } catch {
    return abs
  }
}

/**
 * `<disk>.vdrep.sock` beside the disk's .psf, or `/run/vdrep/<sha256 of its base>.sock` when
 * that is too long (a deep state folder, a long disk path).
 */
export function controlSocketPath(canonical: string, runDir = RUN_DIR): string {
  const beside = statePathFor(canonical, '.vdrep.sock')
  if (Buffer.byteLength(beside) <= MAX_BESIDE_SOCKET_PATH) return beside
  // The hash of the state's base name: for a disk whose state is beside it, its path as before.
  const digest = crypto.createHash('sha256').update(statePathFor(canonical, '')).digest('hex').slice(0, 40)
  return path.join(runDir, `${digest}.sock`)
}

/** The side file holding the pre-freeze contents of in-flight blocks the VM overwrote. */
export function cowPathFor(canonical: string): string {
  return statePathFor(canonical, '.vdrep.cow')
}
