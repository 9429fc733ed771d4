// Replace a file so that a crash leaves either the old or the new one: write to a temp
// file beside it, fsync, rename into place, fsync the directory.
import fs from 'node:fs/promises'
import path from 'node:path'

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

export async function writeFileAtomic(file: string, data: Uint8Array | ((fh: fs.FileHandle) => Promise<void>), mode = 0o600): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`)
  const fh = await fs.open(tmp, 'w', mode)
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
