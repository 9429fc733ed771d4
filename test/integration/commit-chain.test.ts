// The commit chain after a full sync: a .psf restored from a copy taken before the sync (while a
// tracker ran, so no clean-stop stamp can give it away) must not be taken for the replica's
// record. A full sync keeps the push sequence, so only the chain can tell: its predecessor is
// never accepted in place of its own commit id.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {ChangeRecord} from '../../src/core/change-record/change-record.js'
import {push} from '../../src/core/delta/push.js'
import {fullsync} from '../../src/core/fullsync/client.js'
import {initDisk} from '../../src/core/init.js'
import {scanDisk} from '../../src/core/tracker/scan.js'
import {filesEqual, seededBytes, tempDir} from '../helpers/disks.js'

const BS = 65536

async function writeBlock(disk: string, block: number, fill: number): Promise<void> {
  const fh = await fs.open(disk, 'r+')
  try {
    await fh.write(Buffer.alloc(BS, fill), 0, BS, block * BS)
  } finally {
    await fh.close()
  }
}

describe('commit chain across a full sync', function () {
  this.timeout(60_000)

  it('a .psf restored from before a full sync gets a full sync, not an empty delta, and the replica ends equal', async () => {
    const dir = await tempDir()
    try {
      const disk = path.join(dir, 'src', 'd.img')
      const replica = path.join(dir, 'dst', 'd.img')
      await fs.mkdir(path.dirname(disk))
      await fs.mkdir(path.dirname(replica))
      await fs.writeFile(disk, seededBytes('chain', 8 << 20))
      await initDisk(disk, {target: replica, rpoSeconds: 3600, blockSize: BS})
      await fullsync(disk, {})
      await writeBlock(disk, 0, 1)
      await scanDisk(disk, {})
      assert.equal((await push(disk, {})).mode, 'delta')
      // A copy of the record as a running tracker leaves it (no clean stop).
      const copy = path.join(dir, 'copy.psf')
      await fs.copyFile(`${disk}.psf`, copy)
      const rec = await ChangeRecord.openOwned(copy)
      await rec.uncleanStart()
      await rec.close()
      await fullsync(disk, {})
      await writeBlock(disk, 5, 9) // recorded in the live record only
      await scanDisk(disk, {})
      await fs.copyFile(copy, `${disk}.psf`) // the record restored from the copy
      const r = await push(disk, {})
      assert.equal(r.mode, 'fullsync', `an old record pushed a ${r.mode} of ${r.blocks} blocks`)
      assert.ok(await filesEqual(disk, replica), 'the replica differs from its source after exit 0')
    } finally {
      await fs.rm(dir, {recursive: true, force: true})
    }
  })
})
