// Generated test disks: random, zero (holes) and text regions from a seeded generator, so a
// failure reproduces. Sizes are small; the benchmark makes its own large ones.
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

export async function tempDir(prefix = 'vdrep-test-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix))
}

/** Deterministic bytes from a seed (AES-CTR keystream). */
export function seededBytes(seed: string, length: number): Buffer {
  const key = crypto.createHash('sha256').update(seed).digest()
  const c = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  return c.update(Buffer.alloc(length))
}

const TEXT = Buffer.from('the quick brown fox jumps over the lazy replica; vdrep keeps the second copy honest.\n')

/**
 * A disk of `size` bytes cut in `region`-byte regions cycling random, zero, text, zero:
 * half zeros (left as holes), the rest random or repetitive text.
 */
export async function makeMixedDisk(file: string, size: number, seed = 'disk', region = 1 << 20): Promise<void> {
  const fh = await fs.open(file, 'w', 0o644)
  try {
    await fh.truncate(size)
    for (let off = 0, i = 0; off < size; off += region, i++) {
      const len = Math.min(region, size - off)
      const kind = i % 4
      if (kind === 0) await fh.write(seededBytes(`${seed}:${i}`, len), 0, len, off)
      else if (kind === 2) {
        const text = Buffer.alloc(len)
        for (let p = 0; p < len; p += TEXT.length) TEXT.copy(text, p)
        text.write(`region ${i} of ${seed}`, 0)
        await fh.write(text, 0, len, off)
      }
    }
  } finally {
    await fh.close()
  }
}

const WORDS = (
  'the of and to in is was for on that with as by at from replica disk block sync data host write read kernel page cache ' +
  'journal commit point source target network link level frame header error buffer user mail order invoice total status ' +
  'request response session login date time value index table record field query update insert select delete'
).split(' ')

/** Text that compresses as logs and documents do (about 3x with zstd -1): seeded words, numbers and line breaks. */
export function seededText(seed: string, length: number): Buffer {
  const r = seededBytes(seed, Math.max(length, 64))
  const out = Buffer.alloc(length)
  let p = 0
  for (let i = 0; p < length; i += 3) {
    const a = r[i % r.length]
    const b = r[(i + 1) % r.length]
    const word = a % 7 === 0 ? String(r.readUInt16LE(i % (r.length - 2))) : WORDS[(a * 256 + b) % WORDS.length]
    p += out.write(word + (b % 11 === 0 ? '\n' : ' '), p)
  }
  return out
}

/**
 * The "mixed disk": `region`-byte regions cycling random, random, zero (a hole), text,
 * text: 40% random, 20% holes, 40% text that compresses like real text (seededText). The bench
 * and the compression tests use it where makeMixedDisk's repeated line would compress ~1000x.
 */
export async function makeRealMixedDisk(file: string, size: number, seed = 'disk', region = 1 << 20): Promise<void> {
  const fh = await fs.open(file, 'w', 0o644)
  try {
    await fh.truncate(size)
    for (let off = 0, i = 0; off < size; off += region, i++) {
      const len = Math.min(region, size - off)
      const kind = i % 5
      if (kind < 2) await fh.write(seededBytes(`${seed}:${i}`, len), 0, len, off)
      else if (kind > 2) await fh.write(seededText(`${seed}:${i}`, len), 0, len, off)
    }
  } finally {
    await fh.close()
  }
}

/** Overwrite `count` distinct blocks (chosen from the seed) with fresh random bytes. */
export async function scribbleBlocks(file: string, blockSize: number, count: number, seed = 'scribble'): Promise<number[]> {
  const size = (await fs.stat(file)).size
  const blocks = Math.floor(size / blockSize)
  const picks = new Set<number>()
  const rnd = seededBytes(seed, count * 64)
  for (let i = 0; picks.size < count; i++) picks.add(rnd.readUInt32LE((i * 4) % (rnd.length - 4)) % blocks)
  const fh = await fs.open(file, 'r+')
  try {
    for (const b of picks) await fh.write(seededBytes(`${seed}:${b}`, blockSize), 0, blockSize, b * blockSize)
  } finally {
    await fh.close()
  }
  return [...picks].sort((a, b) => a - b)
}

export async function filesEqual(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([fs.readFile(a), fs.readFile(b)])
  return x.equals(y)
}

/** Bytes actually allocated on disk (st_blocks * 512). */
export async function allocatedBytes(file: string): Promise<number> {
  return (await fs.stat(file)).blocks * 512
}
