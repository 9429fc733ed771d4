// At every moment exactly one process may write a disk's .psf: the running tracker, or else the
// holder of the disk lock. A second would-be writer is refused (LockError, exit 3) and writes
// nothing; a claim while a tracker answers gets a read-only record and the tracker as writer.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {HeaderFlag} from '../../../src/core/psf/header.js'
import {identityOf} from '../../../src/core/psf/disk-identity.js'
import {newHeader, psfPathFor} from '../../../src/core/psf/psf-file.js'
import {ChangeRecord} from '../../../src/core/change-record/change-record.js'
import {claimRecord, requireOwned} from '../../../src/core/change-record/claim.js'
import {ControlServer} from '../../../src/core/tracker/control-server.js'
import {canonicalDisk, controlSocketPath} from '../../../src/core/tracker/paths.js'
import {openRecord} from '../../../src/core/tracker/record.js'
import {kernelLocksInUse, TrackerLock} from '../../../src/core/locks/index.js'
import {TrackerControlClient} from '../../../src/core/tracker/control-client.js'
import {tempDir} from '../../helpers/disks.js'

const SIZE = 16 * 4096

describe('change record claim (one writer at a time)', function () {
  let dir: string
  let disk: string

  before(function () {
    if (!kernelLocksInUse()) this.skip() // the refusals below are checked with the addon's flock
  })
  beforeEach(async () => {
    dir = await tempDir('vdrep-claim-')
    disk = path.join(dir, 'disk.img')
    await fs.writeFile(disk, Buffer.alloc(SIZE))
    await ChangeRecord.init(psfPathFor(disk), {
      ...newHeader({
        diskSize: SIZE,
        blockSize: 4096,
        hashAlgo: 1,
        settings: {target: '/x', rpoSeconds: 900, fullsyncPort: 1, deltaPort: 2},
        identity: await identityOf(disk),
      }),
      flags: HeaderFlag.NEEDS_FULL_SYNC,
    })
  })
  afterEach(async () => fs.rm(dir, {recursive: true, force: true}))

  it('without a tracker the claim owns the record; a second claim is refused with exit 3 and writes nothing', async () => {
    const first = await claimRecord(disk, 'push')
    try {
      assert.equal(first.owned, first.record)
      assert.equal(first.writer, first.record)
      assert.equal(first.tracker, null)
      await assert.rejects(
        claimRecord(disk, 'fullsync'),
        (err: {exitCode?: number; message: string}) => err.exitCode === 3 && /already working on/.test(err.message),
      )
      await first.writer.beginCommit(9)
    } finally {
      await first.release()
    }
    const again = await claimRecord(disk, 'push')
    assert.equal(again.record.header.pendingSeq, 9, 'only the first claim wrote')
    await again.release()
  })

  it('a tracker cannot start while a claim holds the disk, and a claim is refused while a tracker owns the .psf', async () => {
    const claim = await claimRecord(disk, 'push')
    await assert.rejects(openRecord(disk, 'tracker'), (err: {exitCode?: number}) => err.exitCode === 3)
    await claim.release()
    // A tracker whose control socket is gone (its flock still held): nobody else may write.
    const lock = await TrackerLock.acquire(await canonicalDisk(disk), psfPathFor(disk), 'tracker')
    try {
      await assert.rejects(claimRecord(disk, 'push'), /a tracker holds .* but nothing answers on its control socket/)
    } finally {
      lock.release()
    }
  })

  it('with a tracker answering: the record opens read-only and the tracker is the writer', async () => {
    const server = await ControlServer.listen(controlSocketPath(await canonicalDisk(disk)), {
      status: () => ({}),
      release: () => ({}),
      freeze: () => Promise.reject(new Error('x')),
      read: () => Promise.reject(new Error('x')),
      complete: () => Promise.reject(new Error('x')),
      pending: () => {
        throw new Error('x')
      },
      disconnected: () => {},
      transition: async () => ({}),
    })
    try {
      const claim = await claimRecord(disk, 'push')
      try {
        assert.ok(claim.tracker instanceof TrackerControlClient)
        assert.equal(claim.writer, claim.tracker)
        assert.equal(claim.owned, null)
        assert.equal(claim.record.writable, false)
        await assert.rejects(claim.record.beginCommit(1), /read-only/)
        assert.throws(() => requireOwned(claim, 'cannot grow the record'), /a tracker owns the change record/)
      } finally {
        await claim.release()
      }
    } finally {
      await server.close()
    }
  })
})
