// The bitmap moves' crash safety: a crash after any one of a move's page writes leaves every
// block that was dirty before the move dirty on disk, in one bitmap or the other.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {Bitmap} from '../../../src/core/psf/bitmap.js'
import {BITS_PER_PAGE, Region} from '../../../src/core/psf/layout.js'
import {newHeader, PsfFile} from '../../../src/core/psf/psf-file.js'
import {freezeMove, markScannedMove, mergeBackMove, type BitmapStore} from '../../../src/core/change-record/moves.js'
import {tempDir} from '../../helpers/disks.js'

const BS = 4096
const BLOCKS = 3 * BITS_PER_PAGE

class Crash extends Error {}

/** A store over a real .psf that dies after `writes` writeBitmap calls, as kill -9 would. */
function dyingStore(psf: PsfFile, writes: number): BitmapStore {
  let left = writes
  return {
    path: psf.path,
    writeBitmap: async (region, bm, pages, opts) => {
      if (left-- <= 0) throw new Crash('killed')
      await psf.writeBitmap(region, bm, pages, opts)
    },
  }
}

async function dirtyOnDisk(file: string): Promise<Set<number>> {
  const psf = await PsfFile.open(file, false)
  try {
    const a = (await psf.readBitmap(Region.ACTIVE)).bitmap
    const i = (await psf.readBitmap(Region.INFLIGHT)).bitmap
    return new Set([...a.setBlocks(), ...i.setBlocks()])
  } finally {
    await psf.close()
  }
}

describe('change record bitmap moves (crash safety)', () => {
  let dir: string
  let file: string
  // Dirty blocks on every page, some in active and some already in flight.
  const activeBlocks = [0, 5, BITS_PER_PAGE + 1, 2 * BITS_PER_PAGE + 9]
  const inflightBlocks = [6, 2 * BITS_PER_PAGE + 10]

  async function fresh(): Promise<{psf: PsfFile; active: Bitmap; inflight: Bitmap}> {
    dir = await tempDir('vdrep-moves-')
    file = path.join(dir, 'disk.img.psf')
    await PsfFile.create(
      file,
      newHeader({diskSize: BLOCKS * BS, blockSize: BS, hashAlgo: 1, settings: {target: '/x', rpoSeconds: 900, fullsyncPort: 1, deltaPort: 2}}),
    )
    const psf = await PsfFile.open(file)
    const active = new Bitmap(BLOCKS)
    const inflight = new Bitmap(BLOCKS)
    for (const b of activeBlocks) active.set(b)
    for (const b of inflightBlocks) inflight.set(b)
    await psf.writeBitmap(Region.ACTIVE, active)
    await psf.writeBitmap(Region.INFLIGHT, inflight)
    return {psf, active, inflight}
  }
  afterEach(async () => fs.rm(dir, {recursive: true, force: true}))

  const all = new Set([...activeBlocks, ...inflightBlocks])
  const moves: Array<[string, (s: BitmapStore, a: Bitmap, i: Bitmap) => Promise<unknown>]> = [
    ['freeze', (s, a, i) => freezeMove(s, a, i)],
    ['merge back', (s, a, i) => mergeBackMove(s, a, i)],
    ['scan result', (s, a, i) => markScannedMove(s, a, i, new Bitmap(BLOCKS))],
  ]
  for (const [name, move] of moves) {
    it(`${name}: killed after 0, 1 or 2 writes, nothing dirty is lost`, async () => {
      for (let writes = 0; writes <= 2; writes++) {
        const {psf, active, inflight} = await fresh()
        try {
          const r = await move(dyingStore(psf, writes), active, inflight).then(
            () => 'finished',
            (err: unknown) => {
              if (!(err instanceof Crash)) throw err
              return 'killed'
            },
          )
          assert.equal(r, writes < 2 ? 'killed' : 'finished')
          assert.deepEqual(await dirtyOnDisk(file), all, `${name} killed after ${writes} writes`)
        } finally {
          await psf.close()
          await fs.rm(dir, {recursive: true, force: true})
        }
      }
    })
  }
})
