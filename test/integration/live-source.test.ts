// A full sync of a disk that changes while it runs (no tracker): a chunk is checksummed
// through a mapping, and the blocks that differ are read afterwards (fill), so a block may
// change between the two. What is sent, digested and proved must be what was read: a block
// that now equals the replica is skipped, one that is now zero travels as a zero run, one
// that changed again travels with its new bytes, and the proof passes on the result.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {vdrep} from '../helpers/cli.js'
import {filesEqual, makeMixedDisk, seededBytes, tempDir} from '../helpers/disks.js'
import {nativeAvailable} from '../../src/core/native/binding.js'
import {fullsync} from '../../src/core/fullsync/client.js'
import {decodeReplicaState} from '../../src/core/receiver/replica-state.js'

const MiB = 1 << 20
const BS = 64 * 1024

describe('full sync of a disk written between checksum and read', function () {
  this.timeout(60_000)
  let dir: string
  before(function () {
    if (!nativeAvailable) this.skip() // no mapping without the addon: every chunk is read whole
  })
  beforeEach(async () => {
    dir = await tempDir()
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  async function writeBlock(file: string, block: number, data: Buffer): Promise<void> {
    const fh = await fs.open(file, 'r+')
    try {
      await fh.write(data, 0, data.length, block * BS)
    } finally {
      await fh.close()
    }
  }

  it('re-decides each block on what fill() read: now equal is skipped, now zero is a zero run, changed again is sent as read', async () => {
    const disk = path.join(dir, 'vm.img')
    const replica = path.join(dir, 'replica', 'vm.img')
    await fs.mkdir(path.dirname(replica))
    await makeMixedDisk(disk, 8 * MiB, 'live')
    assert.equal((await vdrep(['init', disk, '--to', replica, '--block-size', '64k'])).code, 0)
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    const old = await fs.readFile(replica)
    // Three blocks differ from the replica when the sync starts.
    const [equalAgain, nowZero, changedAgain] = [3, 40, 97]
    for (const b of [equalAgain, nowZero, changedAgain]) await writeBlock(disk, b, seededBytes(`first:${b}`, BS))

    let fills = 0
    const result = await fullsync(disk, {
      beforeFill: async (first, runs) => {
        fills++
        const asked = runs.flatMap(([a, z]) => Array.from({length: z - a}, (_, i) => first + a + i))
        for (const b of [equalAgain, nowZero, changedAgain])
          if (b >= first && b < first + 64) assert.ok(asked.includes(b), `block ${b} is read by fill: ${asked}`)
        // Writes that land after the checksums and before the read:
        if (asked.includes(equalAgain)) await writeBlock(disk, equalAgain, old.subarray(equalAgain * BS, (equalAgain + 1) * BS))
        if (asked.includes(nowZero)) await writeBlock(disk, nowZero, Buffer.alloc(BS))
        if (asked.includes(changedAgain)) await writeBlock(disk, changedAgain, seededBytes(`second:${changedAgain}`, BS))
      },
    })
    assert.ok(fills >= 1, 'no chunk was mapped (fill never ran): the test proves nothing')
    assert.equal(result.blocksDiffering, 1, 'only the block that changed again travels as data')
    assert.equal(result.blocksZeroed, 1, 'the block that became zero travels as a zero run')
    assert.ok(await filesEqual(disk, replica), 'the replica is the disk as read')
    const again = await fullsync(disk)
    assert.equal(again.blocksDiffering + again.blocksZeroed, 0, 'a rerun finds nothing to send')
    assert.equal(again.digest, result.digest, 'the proved digest is the one of the disk as it is')
  })

  it('a disk cut short during the sync fails it: the end read as holes is not proved as zeros', async () => {
    const disk = path.join(dir, 'vm.img')
    const replica = path.join(dir, 'replica', 'vm.img')
    await fs.mkdir(path.dirname(replica))
    await fs.writeFile(disk, seededBytes('shrinking', 64 * MiB))
    assert.equal((await vdrep(['init', disk, '--to', replica, '--block-size', '64k'])).code, 0)
    let cut = false
    const outcome = await fullsync(disk, {
      checkpointBytes: 4 * MiB, // little read-ahead: the chunks started after the cut find holes
      progress: (p) => {
        if (!cut && p.bytesCompared >= 4 * MiB) {
          cut = true
          void fs.truncate(disk, 16 * MiB)
        }
      },
    }).then(
      (r) => r,
      (err: Error) => err,
    )
    assert.ok(cut)
    assert.ok(outcome instanceof Error, `the sync of a disk that shrank under it claimed success: ${JSON.stringify(outcome)}`)
    assert.match(outcome.message, /shrank during the sync|ended at offset/)
    assert.equal(decodeReplicaState(await fs.readFile(`${replica}.vdrep`)).complete, false, 'the replica stays marked incomplete')
  })
  it('a fresh replica of a disk whose data and holes alternate per chunk reads each data chunk once: none is mapped first', async () => {
    // makeMixedDisk alternates 1 MiB of data and 1 MiB of holes, the chunk of a fresh sync.
    // Judged over all its blocks, a chunk of holes "sent nothing", so the data chunk after it
    // was checksummed through a mapping, then read again to be sent (fill): two passes over
    // half the disk. The send share is now judged over data blocks only.
    const disk = path.join(dir, 'vm.img')
    const replica = path.join(dir, 'replica', 'vm.img')
    await fs.mkdir(path.dirname(replica))
    await makeMixedDisk(disk, 16 * MiB, 'alternating')
    assert.equal((await vdrep(['init', disk, '--to', replica, '--block-size', '64k'])).code, 0)
    let fills = 0
    const result = await fullsync(disk, {
      beforeFill: async () => {
        fills++
      },
    })
    assert.equal(fills, 0, 'a data chunk of a fresh replica was mapped, then read again')
    assert.equal(result.blocksDiffering, 8 * 16, 'every data block travels once')
    assert.ok(await filesEqual(disk, replica), 'the replica equals the disk')
  })
})
