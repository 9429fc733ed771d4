// An open point reader serves many reads at once (an NBD export keeps dozens in flight) while
// pushes commit and make it reload its chain. Each read must use one chain from its start to its
// end: a reload that swapped the records under reads in flight (or closed them) gave wrong bytes
// or EIO. Here 16 readers at a time read the point in random pieces while pushes commit; every
// piece must equal the copy of the source taken at the point's push.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {push} from '../../../src/core/delta/push.js'
import {fullsync} from '../../../src/core/fullsync/client.js'
import {initDisk} from '../../../src/core/init.js'
import {isAllZero} from '../../../src/core/hash/zero.js'
import {openPoint} from '../../../src/core/points/point-reader.js'
import {setRetention} from '../../../src/core/points/settings.js'
import {readReplicaState} from '../../../src/core/receiver/replica-state.js'
import {scanDisk} from '../../../src/core/tracker/scan.js'
import {makeMixedDisk, seededBytes, tempDir} from '../../helpers/disks.js'

const BS = 64 * 1024
const SIZE = 8 << 20

describe('point reader: concurrent reads while pushes commit', function () {
  this.timeout(120_000)
  let dir: string
  before(async () => {
    dir = await tempDir('vdrep-reader-conc-')
  })
  after(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('every read (and block status) in flight across a reload returns the bytes of its point', async () => {
    const disk = path.join(dir, 'd.img')
    const replica = path.join(dir, 'r.img')
    await makeMixedDisk(disk, SIZE, 'conc', BS)
    await initDisk(disk, {target: replica, rpoSeconds: 3600, blockSize: BS})
    await fullsync(disk, {})
    await setRetention(replica, 'count:1000')
    const seq = (await readReplicaState(replica)).state!.lastSeq
    const copy = await fs.readFile(disk)
    const reader = await openPoint(replica, seq)
    let stop = false
    let reads = 0
    const worker = async (w: number) => {
      const rnd = seededBytes(`reader:${w}`, 4096)
      for (let i = 0; !stop; i++) {
        const off = rnd.readUInt32LE((i * 8) % 4088) % SIZE
        const len = 1 + (rnd.readUInt32LE((i * 8 + 4) % 4088) % (3 * BS))
        if (w % 4 === 3) {
          // Block status: a run said to be zero must be zero in the point (a client skips it).
          let pos = off
          for (const r of await reader.extents!(off, len)) {
            if (r.zero) assert.ok(isAllZero(copy.subarray(pos, pos + r.length)), `extents say ${pos}+${r.length} is zero; it is not`)
            pos += r.length
          }
          assert.ok(pos > off, 'extents cover something')
          await new Promise((r) => setImmediate(r)) // index-only answers never wait for I/O: let the pushes run
        } else {
          const got = await reader.read(off, len)
          assert.ok(got.equals(copy.subarray(off, off + got.length)), `read ${off}+${len} differs from the point`)
        }
        reads++
      }
    }
    const workers = Array.from({length: 16}, (_, w) => worker(w))
    try {
      const fh = await fs.open(disk, 'r+')
      for (let round = 0; round < 8; round++) {
        // Most of the disk changes each round, so nearly every read crosses a commit.
        for (let b = round % 2; b < SIZE / BS; b += 2) {
          // Data where there were zeros, zeros where there was data: records get zero runs, the replica holes move.
          const data = b % 3 === round % 3 ? Buffer.alloc(BS) : seededBytes(`c:${round}:${b}`, BS)
          await fh.write(data, 0, BS, b * BS)
        }
        await fh.sync()
        await scanDisk(disk, {})
        await push(disk, {})
      }
      await fh.close()
    } finally {
      stop = true
      await Promise.all(workers)
      await reader.close()
    }
    assert.ok(reads > 50, `only ${reads} reads ran`)
  })
})
