// The tracker bench's scan rows: `vdrep track --scan` of a disk of random data against the raw
// hash throughput (bench/tracker-bench.ts runs it).
import {spawnSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {median, row, type BenchRow} from './bench-common.js'
import {blockHasher, HASH_LENGTH} from '../src/core/hash/block-hash.js'
import {HeaderFlag} from '../src/core/psf/header.js'
import {HASHES_PER_PAGE} from '../src/core/psf/layout.js'
import {PsfFile, psfPathFor} from '../src/core/psf/psf-file.js'

const KiB = 1024
const MiB = 1024 * KiB
const VDREP_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/run.js')
const TRACKER_SECTION = 'tracker'

/**
 * `vdrep track --scan` of a disk of random data against the raw hash throughput: the same
 * number of bytes hashed in 64 KiB blocks from memory, no I/O. The index the scan compares
 * with is written directly (hashing the disk once), which is what a proved full sync leaves.
 */
export async function scanRows(dir: string, size: number, runs: number, log: (line: string) => void): Promise<BenchRow[]> {
  const disk = path.join(dir, 'scanned.img')
  log(`tracker: scan of ${size / MiB} MiB of random data x ${runs}`)
  spawnSync('dd', ['if=/dev/urandom', `of=${disk}`, 'bs=1M', `count=${size / MiB}`, 'status=none'])
  const init = spawnSync(VDREP_BIN, ['init', disk, '--to', path.join(dir, 'replica', 'scanned.img'), '-q'], {encoding: 'utf8'})
  if (init.status !== 0) throw new Error(`vdrep init failed: ${init.stderr}`)
  const psf = await PsfFile.open(psfPathFor(disk))
  let hasher
  try {
    hasher = blockHasher(psf.header.hashAlgo, psf.header.replicaId)
    const bs = psf.header.blockSize
    const fh = await fs.open(disk, 'r')
    const chunk = Buffer.allocUnsafe(HASHES_PER_PAGE * bs)
    for (let off = 0; off < size; off += chunk.length) {
      const {bytesRead} = await fh.read(chunk, 0, chunk.length, off)
      const hashes = Buffer.allocUnsafe(Math.ceil(bytesRead / bs) * HASH_LENGTH)
      for (let b = 0; b * bs < bytesRead; b++) hasher.hash(chunk.subarray(b * bs, Math.min(bytesRead, (b + 1) * bs))).copy(hashes, b * HASH_LENGTH)
      await psf.writeIndexPages(off / bs, hashes)
    }
    await fh.close()
    await psf.sync()
    await psf.updateHeader({flags: (psf.header.flags | HeaderFlag.INDEX_VALID) & ~HeaderFlag.NEEDS_FULL_SYNC, generation: 1})
  } finally {
    await psf.close()
  }
  const engine: number[] = []
  const wall: number[] = []
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    const r = spawnSync(VDREP_BIN, ['track', disk, '--scan', '--json'], {encoding: 'utf8'})
    wall.push((performance.now() - t) / 1000)
    if (r.status !== 0) throw new Error(`vdrep track --scan failed: ${r.stderr}`)
    const out = JSON.parse(r.stdout) as {seconds: number; blocksMarked: number}
    if (out.blocksMarked !== 0) throw new Error(`the scan marked ${out.blocksMarked} blocks of an unchanged disk`)
    engine.push(out.seconds)
  }
  const mem = Buffer.allocUnsafe(64 * MiB)
  for (let o = 0; o < mem.length; o += 4096) mem.writeUInt32LE((o * 2654435761) >>> 0, o) // not zero, not trivially compressible
  const hashOnly: number[] = []
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    for (let done = 0; done < size; done += mem.length) {
      for (let o = 0; o < mem.length && done + o < size; o += 64 * KiB) hasher.hash(mem.subarray(o, o + 64 * KiB))
    }
    hashOnly.push((performance.now() - t) / 1000)
  }
  const scan = row(TRACKER_SECTION, `scan ${size / MiB} MiB: vdrep track --scan`, engine, size)
  scan.note = `engine time; wall with start-up ${median(wall).toFixed(2)} s`
  const raw = row(TRACKER_SECTION, `scan ${size / MiB} MiB: ${hasher.name} of 64 KiB blocks in memory`, hashOnly, size)
  raw.note = 'raw hash throughput, one thread'
  return [scan, raw]
}
