// `--scan` in-process: an index made by hashing the disk by hand, then changed blocks found;
// holes and zero blocks compare as zero hashes; locks keep it from racing a tracker or a push.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {HashAlgo} from '../../../src/core/hash/block-hash.js'
import {mapHashRunsAvailable} from '../../../src/core/native/hashing.js'
import {__setMappedHashingForTests} from '../../../src/core/disk/read-hash.js'
import {Bitmap} from '../../../src/core/psf/bitmap.js'
import {HeaderFlag} from '../../../src/core/psf/header.js'
import {Region} from '../../../src/core/psf/layout.js'
import {PsfFile, psfPathFor} from '../../../src/core/psf/psf-file.js'
import {scanDisk, type ScanProgress} from '../../../src/core/tracker/scan.js'
import {acquireDiskLock, TrackerLock} from '../../../src/core/locks/index.js'
import {tempDir} from '../../helpers/disks.js'
import {psfWithIndex, writeAt, writeWithHole} from '../../helpers/scan-fixture.js'

const BS = 4096
const BLOCKS = 300
const SIZE = BLOCKS * BS - 123

// sha256: read and hashed by the main thread (and workers); xxh3: checksummed through a
// mapping in the thread pool, or read when mapping is off (VDREP_NO_MMAP=1).
const MODES = [
  {name: 'sha256, read', algo: HashAlgo.SHA256, map: true, mapped: false},
  {name: 'xxh3, mapped', algo: HashAlgo.XXH3, map: true, mapped: true},
  {name: 'xxh3, mapping off', algo: HashAlgo.XXH3, map: false, mapped: false},
]

for (const mode of MODES)
  describe(`tracker --scan (in-process; ${mode.name})`, () => {
    let dir: string
    let disk: string
    let image: Buffer

    beforeEach(async () => {
      dir = await tempDir('vdrep-scan-')
      disk = path.join(dir, 'd.img')
      image = Buffer.alloc(SIZE)
      crypto.randomBytes(100 * BS).copy(image, 0)
      crypto.randomBytes(50 * BS).copy(image, 200 * BS) // blocks 100..199 zero (left as a hole)
      await writeWithHole(disk, image, 100 * BS, 200 * BS)
      const inflight = new Bitmap(BLOCKS)
      inflight.set(7) // left by a push that died
      await psfWithIndex(disk, image, BS, mode.algo, inflight)
      __setMappedHashingForTests(mode.map)
    })
    afterEach(async () => {
      __setMappedHashingForTests(true)
      await fs.rm(dir, {recursive: true, force: true})
    })

    const write = (off: number, data: Buffer) => writeAt(disk, off, data)

    it('marks exactly the changed blocks (data, a hole written, data zeroed, the short last block), merges a leftover in-flight set, records the stamp', async () => {
      await write(3 * BS + 10, Buffer.from([image[3 * BS + 10] ^ 1]))
      await write(150 * BS, Buffer.from('hello'))
      await write(220 * BS, Buffer.alloc(BS))
      await write(SIZE - 1, Buffer.from([image[SIZE - 1] ^ 0xff]))
      await write(20 * BS, image.subarray(20 * BS, 21 * BS)) // the same bytes: no change
      const events: ScanProgress[] = []
      const r = await scanDisk(disk, {progress: (p) => events.push({...p})})
      assert.equal(r.blocksScanned, BLOCKS)
      assert.equal(r.bytesScanned, SIZE)
      assert.equal(r.mapped, mode.mapped && mapHashRunsAvailable(), 'the path this mode is meant to test')
      assert.equal(r.blocksMarked, 4)
      assert.equal(r.blocksNewlyMarked, 4)
      assert.equal(r.dirtyBlocks, 5)
      assert.equal(events.at(-1)?.phase, 'done')
      assert.equal(events.at(-1)?.blocksDone, BLOCKS)
      const psf = await PsfFile.open(psfPathFor(disk), false)
      assert.deepEqual([...(await psf.readBitmap(Region.ACTIVE)).bitmap.setBlocks()], [3, 7, 150, 220, 299])
      assert.equal((await psf.readBitmap(Region.INFLIGHT)).bitmap.count(), 0)
      assert.ok(psf.header.flags & HeaderFlag.CLEAN_SHUTDOWN)
      assert.equal(psf.header.sourceSize, SIZE)
      await psf.close()
      const again = await scanDisk(disk)
      assert.equal(again.blocksMarked, 4)
      assert.equal(again.blocksNewlyMarked, 0)
    })

    it('refuses without a valid index (a full sync is needed), and while a tracker or a push holds the disk', async () => {
      const lock = await TrackerLock.acquire(disk, psfPathFor(disk), 'tracker')
      await assert.rejects(scanDisk(disk), (err: Error & {exitCode?: number}) => err.exitCode === 3 && /cannot start the scan/.test(err.message))
      lock.release()
      const push = await acquireDiskLock(disk, 'push')
      await assert.rejects(scanDisk(disk), /another vdrep process \(pid \d+, push, since .*\) is already working on it/)
      await push.release()
      const psf = await PsfFile.open(psfPathFor(disk))
      await psf.updateHeader({flags: 0})
      await psf.close()
      await assert.rejects(scanDisk(disk), (err: Error & {exitCode?: number}) => err.exitCode === 4 && /full sync is needed/.test(err.message))
    })
  })
