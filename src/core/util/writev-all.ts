// Positioned writev until every byte is written (the kernel may take fewer in one call).
import type fs from 'node:fs/promises'

export async function writevAll(fh: fs.FileHandle, buffers: Buffer[], pos: number): Promise<number> {
  let rest = buffers
  let at = pos
  while (rest.length > 0) {
    const {bytesWritten} = await fh.writev(rest, at)
    at += bytesWritten
    let n = bytesWritten
    let i = 0
    while (i < rest.length && n >= rest[i].length) n -= rest[i++].length
    rest = rest.slice(i)
    if (n > 0) rest[0] = rest[0].subarray(n)
  }
  return at - pos
}
