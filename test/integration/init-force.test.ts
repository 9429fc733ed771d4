// `init --force` over a disk's own record, to the same target, keeps the replica id: the full
// sync that follows repairs the replica instead of being refused as another source's
// (REPLICA_FOREIGN), which would teach users --take-over-replica, the flag that lets a clone in.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {VdrepError} from '../../src/core/errors.js'
import {fullsync} from '../../src/core/fullsync/client.js'
import {initDisk} from '../../src/core/init.js'
import {filesEqual, seededBytes, tempDir} from '../helpers/disks.js'

const BS = 65536

describe('init --force keeps the replica of the same disk and target', function () {
  this.timeout(60_000)

  it('same disk, same target: the same replica id, and the full sync after it succeeds', async () => {
    const dir = await tempDir()
    try {
      const disk = path.join(dir, 'd.img')
      const replica = path.join(dir, 'replica', 'd.img')
      await fs.mkdir(path.dirname(replica))
      await fs.writeFile(disk, seededBytes('force', 4 << 20))
      const first = await initDisk(disk, {target: replica, rpoSeconds: 3600, blockSize: BS})
      await fullsync(disk, {})
      const again = await initDisk(disk, {target: replica, rpoSeconds: 3600, blockSize: BS, force: true})
      assert.equal(again.replicaId, first.replicaId)
      await fullsync(disk, {})
      assert.ok(await filesEqual(disk, replica))
    } finally {
      await fs.rm(dir, {recursive: true, force: true})
    }
  })

  it('another disk forced onto a copy of the record gets a new id, and the replica stays fenced', async () => {
    const dir = await tempDir()
    try {
      const disk = path.join(dir, 'd.img')
      const other = path.join(dir, 'other.img')
      const replica = path.join(dir, 'replica', 'd.img')
      await fs.mkdir(path.dirname(replica))
      await fs.writeFile(disk, seededBytes('force', 4 << 20))
      await fs.writeFile(other, seededBytes('other', 4 << 20))
      const first = await initDisk(disk, {target: replica, rpoSeconds: 3600, blockSize: BS})
      await fullsync(disk, {})
      const before = await fs.readFile(replica)
      await fs.copyFile(`${disk}.psf`, `${other}.psf`)
      const forced = await initDisk(other, {target: replica, rpoSeconds: 3600, blockSize: BS, force: true})
      assert.notEqual(forced.replicaId, first.replicaId)
      await assert.rejects(fullsync(other, {}), (e: unknown) => e instanceof VdrepError && e.code === 'REPLICA_FOREIGN')
      assert.ok(before.equals(await fs.readFile(replica)), 'the replica of another disk was written')
    } finally {
      await fs.rm(dir, {recursive: true, force: true})
    }
  })
})
