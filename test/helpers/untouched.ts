// "Nothing was written": every entry of some folders (recursively), with its size, mtime, ctime,
// inode and, for files, a checksum of its bytes. Two snapshots equal means no file was created,
// removed, replaced or written (atime, which a read moves, is left out).
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'

/**
 * `lockNotes`: lock files whose holder note is written while held and emptied at release
 * (the disk lock, locks/disk-lock.ts; a killed holder leaves its note): only their inode is compared.
 */
export async function snapshotTree(dirs: string[], lockNotes: string[] = []): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const walk = async (p: string): Promise<void> => {
    const st = await fs.lstat(p, {bigint: true})
    if (lockNotes.includes(p)) {
      out[p] = `lock file ino=${st.ino}`
      return
    }
    let line = `size=${st.size} mtime=${st.mtimeNs} ctime=${st.ctimeNs} ino=${st.ino} mode=${st.mode}`
    if (st.isFile())
      line += ` sha256=${crypto
        .createHash('sha256')
        .update(await fs.readFile(p))
        .digest('hex')}`
    out[p] = line
    if (st.isDirectory()) for (const e of (await fs.readdir(p)).sort()) await walk(path.join(p, e))
  }
  for (const d of dirs) await walk(d)
  return out
}
