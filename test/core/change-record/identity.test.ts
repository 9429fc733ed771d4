// Tests of src/core/change-record/identity.ts: the identity rule (same disk, another disk,
// replaced under a tracker, a block device), the binding of a format-1 record only on its own
// clean point, and checkRecordIdentity binding a real format-1 .psf as its owner.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {HeaderFlag, type PsfHeader} from '../../../src/core/psf/header.js'
import {newHeader, PsfFile, psfPathFor} from '../../../src/core/psf/psf-file.js'
import {IdentityKind, identityOf, NO_IDENTITY, type DiskIdentity} from '../../../src/core/psf/disk-identity.js'
import {stampOf} from '../../../src/core/psf/disk-stamp.js'
import {checkRecordIdentity, identityVerdict} from '../../../src/core/change-record/identity.js'
import {ChangeRecord} from '../../../src/core/change-record/change-record.js'
import {tempDir} from '../../helpers/disks.js'

const s = {size: 8192, mtimeNs: 1_700_000_000_000_000_001n, ctimeNs: 1_700_000_000_000_000_002n}
const file: DiskIdentity = {kind: IdentityKind.FILE, dev: 0x801n, ino: 42n, path: '/vm/web.img'}

function header(identity: DiskIdentity, flags = HeaderFlag.CLEAN_SHUTDOWN | HeaderFlag.INDEX_VALID): PsfHeader {
  return {
    ...newHeader({diskSize: 8192, blockSize: 4096, hashAlgo: 1, settings: {target: '/x', rpoSeconds: 900, fullsyncPort: 1, deltaPort: 2}, identity}),
    flags,
    generation: 1,
    sourceSize: s.size,
    sourceMtimeNs: s.mtimeNs,
    sourceCtimeNs: s.ctimeNs,
  }
}
const untracked = {trackerRunning: false}

describe('change record identity (a .psf knows its disk)', () => {
  it('the same file: same; another inode or device: PSF_NOT_THIS_DISK naming both and saying `vdrep init`', () => {
    assert.deepEqual(identityVerdict(header(file), '/clone/web.img', {...file, path: '/other/name'}, s, untracked), {kind: 'same'})
    for (const now of [
      {...file, ino: 43n},
      {...file, dev: 0x802n},
      {...file, kind: IdentityKind.BLOCK_DEVICE},
    ]) {
      const v = identityVerdict(header(file), '/clone/web.img', now, s, untracked)
      assert.equal(v.kind, 'refused')
      if (v.kind !== 'refused') return
      assert.equal(v.error.code, 'PSF_NOT_THIS_DISK')
      assert.match(v.error.message, /belongs to another disk: it was made for \/vm\/web\.img/)
      assert.match(v.error.hint ?? '', /vdrep init --force \/clone\/web\.img/)
    }
  })

  it('with a tracker running, another inode at the path reads as the disk replaced under it', () => {
    const v = identityVerdict(header(file, 0), '/vm/web.img', {...file, ino: 99n}, s, {trackerRunning: true})
    assert.ok(v.kind === 'refused' && /replaced while its tracker runs/.test(v.error.message))
  })

  it('a block device: its number and size; a renumbered or resized device is another disk', () => {
    const dev: DiskIdentity = {kind: IdentityKind.BLOCK_DEVICE, dev: 0x703n, ino: 1048576n, path: '/dev/loop3'}
    assert.equal(identityVerdict(header(dev), '/dev/loop3', dev, s, untracked).kind, 'same')
    assert.equal(identityVerdict(header(dev), '/dev/loop3', {...dev, dev: 0x704n}, s, untracked).kind, 'refused')
    assert.equal(identityVerdict(header(dev), '/dev/loop3', {...dev, ino: 2097152n}, s, untracked).kind, 'refused')
  })

  it("a format-1 record binds only when trusted and carrying this disk's clean point, else PSF_UNBOUND", () => {
    assert.deepEqual(identityVerdict(header(NO_IDENTITY), '/vm/web.img', file, s, untracked), {kind: 'bind'})
    for (const [why, h, stamp] of [
      ['a ctime that moved (cp -a)', header(NO_IDENTITY), {...s, ctimeNs: s.ctimeNs + 1n}],
      ["another disk's stamp", header(NO_IDENTITY), {...s, mtimeNs: 5n}],
      ['no clean stop', header(NO_IDENTITY, HeaderFlag.INDEX_VALID), s],
      ['a full sync pending', header(NO_IDENTITY, HeaderFlag.CLEAN_SHUTDOWN | HeaderFlag.NEEDS_FULL_SYNC), s],
    ] as const) {
      const v = identityVerdict(h, '/vm/web.img', file, stamp, untracked)
      assert.ok(v.kind === 'refused' && v.error.code === 'PSF_UNBOUND', why)
    }
  })

  it('checkRecordIdentity binds a real format-1 .psf on its clean point, as its owner only', async () => {
    const dir = await tempDir('vdrep-identity-')
    try {
      const disk = path.join(dir, 'web.img')
      await fs.writeFile(disk, Buffer.alloc(8192))
      const st = await stampOf(disk)
      await PsfFile.create(psfPathFor(disk), {...header(NO_IDENTITY), sourceSize: st.size, sourceMtimeNs: st.mtimeNs, sourceCtimeNs: st.ctimeNs})
      const ro = await ChangeRecord.openReadOnly(psfPathFor(disk))
      assert.equal(await checkRecordIdentity(ro, disk, untracked), null, 'read-only: nothing written')
      await ro.close()
      const owned = await ChangeRecord.openOwned(psfPathFor(disk))
      assert.match((await checkRecordIdentity(owned, disk, untracked)) ?? '', /now records its disk/)
      await owned.close()
      const back = await ChangeRecord.openReadOnly(psfPathFor(disk))
      assert.deepEqual(back.header.identity, await identityOf(disk))
      await back.close()
    } finally {
      await fs.rm(dir, {recursive: true, force: true})
    }
  })
})
