// Replace a file so that a crash leaves either the old or the new one: write to a temp
// file beside it, fsync, rename into place, fsync the directory.
import crypto from 'node:crypto'
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import {namedFileHandle} from './named-file-handle.js'

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

export async function writeFileAtomic(file: string, data: Uint8Array | ((fh: fs.FileHandle) => Promise<void>), mode = 0o600): Promise<void> {
  // A name nobody can guess, created new and never through a symlink: where someone else can
  // write into the folder (a receiver's root shared by mistake), a link planted at a
  // predictable temp name would have made this write a file outside it.
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${crypto.randomBytes(6).toString('hex')}`)
  // Write errors name `file` (what the user knows), not the temp name.
  const fh = namedFileHandle(await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode), file)
  try {
    if (typeof data === 'function') await data(fh)
    else await fh.writeFile(data)
    await fh.sync()
  } catch (err) {
    await fh.close().catch(() => {})
    await fs.rm(tmp, {force: true})
    throw err
  }
  await fh.close()
  await fs.rename(tmp, file)
  await fsyncDir(path.dirname(file))
}
