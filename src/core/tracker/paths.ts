// Where a tracked disk's companions live: the control socket (beside the disk, or under
// /run/vdrep when that path is too long for a unix socket) and the copy-on-write side file.
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'

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

/** `<disk>.vdrep.sock`, or `/run/vdrep/<sha256 of the path>.sock` when that is too long. */
export function controlSocketPath(canonical: string, runDir = RUN_DIR): string {
  const beside = `${canonical}.vdrep.sock`
  if (Buffer.byteLength(beside) <= MAX_BESIDE_SOCKET_PATH) return beside
  const digest = crypto.createHash('sha256').update(canonical).digest('hex').slice(0, 40)
  return path.join(runDir, `${digest}.sock`)
}

/** The side file holding the pre-freeze contents of in-flight blocks the VM overwrote. */
export function cowPathFor(canonical: string): string {
  return `${canonical}.vdrep.cow`
}
