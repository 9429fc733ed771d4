// A disk as `vdrep track --scan` finds it after a full sync: data with a hole in it, and a
// .psf whose trusted block index holds the hashes of that data. Shared by the scan tests
// (in-process and through the hash worker pool).
import fs from 'node:fs/promises'
import {blockHasher, HASH_LENGTH} from '../../src/core/hash/block-hash.js'
import {Bitmap} from '../../src/core/psf/bitmap.js'
import {HeaderFlag} from '../../src/core/psf/header.js'
import {identityOf} from '../../src/core/psf/disk-identity.js'
import {newHeader, PsfFile, psfPathFor} from '../../src/core/psf/psf-file.js'

/** The hash key (replica id) of tests that hash without a .psf. */
export const TEST_HASH_KEY = Buffer.alloc(16, 0x42)

/** The block index of `data`: a hash per block, the zero hash for holes and zero blocks. */
export function blockIndex(algo: number, data: Buffer, bs: number, holes?: Uint8Array, key: Buffer = TEST_HASH_KEY): Buffer {
  const h = blockHasher(algo, key)
  const count = Math.ceil(data.length / bs)
  const out = Buffer.alloc(count * HASH_LENGTH)
  for (let i = 0; i < count; i++) {
    const block = data.subarray(i * bs, Math.min(data.length, (i + 1) * bs))
    const hash = holes?.[i] || block.every((x) => x === 0) ? h.zeroHash(block.length) : h.hash(block)
    hash.copy(out, i * HASH_LENGTH)
  }
  return out
}

/** Write `image` to `file`, leaving bytes [holeFrom, holeTo) as a hole (they must be zero in `image`). */
export async function writeWithHole(file: string, image: Buffer, holeFrom: number, holeTo: number): Promise<void> {
  await fs.writeFile(file, image.subarray(0, holeFrom))
  await fs.truncate(file, image.length)
  await writeAt(file, holeTo, image.subarray(holeTo))
}

/** Overwrite `data.length` bytes of `file` at `off`. */
export async function writeAt(file: string, off: number, data: Buffer): Promise<void> {
  const fh = await fs.open(file, 'r+')
  try {
    await fh.write(data, 0, data.length, off)
  } finally {
    await fh.close()
  }
}

/** The .psf of `disk` as a proved full sync of `image` leaves it (plus `inflight`, a dead push's set). */
export async function psfWithIndex(disk: string, image: Buffer, bs: number, algo: number, inflight?: Bitmap): Promise<void> {
  const blocks = Math.ceil(image.length / bs)
  const header = {
    ...newHeader({
      diskSize: image.length,
      blockSize: bs,
      hashAlgo: algo,
      settings: {target: '/x', rpoSeconds: 900, fullsyncPort: 1, deltaPort: 2},
      identity: await identityOf(disk),
    }),
    flags: HeaderFlag.INDEX_VALID,
    generation: 1,
  }
  await PsfFile.create(psfPathFor(disk), header, {inflight: inflight ?? new Bitmap(blocks)})
  const psf = await PsfFile.open(psfPathFor(disk))
  try {
    await psf.writeIndexPages(0, blockIndex(algo, image, bs, undefined, header.replicaId))
    await psf.sync()
  } finally {
    await psf.close()
  }
}
