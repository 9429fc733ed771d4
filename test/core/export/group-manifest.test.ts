import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {GROUP_EXPORT_MANIFEST, openGroupManifest, saveGroupManifest} from '../../../src/core/export/group-manifest.js'
import {VdrepError} from '../../../src/core/errors.js'
import {tempDir} from '../../helpers/disks.js'

describe('export --group: the folder record that lets a cut run finish', () => {
  let dir: string
  const want = {group: 'vm', root: '/srv/r', groupSeq: 3}
  beforeEach(async () => {
    dir = await tempDir('vdrep-manifest-')
  })
  afterEach(() => fs.rm(dir, {recursive: true, force: true}))
  const refused = (p: Promise<unknown>) => assert.rejects(p, (e: unknown) => e instanceof VdrepError && e.code === 'EXPORT_TARGET_EXISTS')

  it('a new folder gets a new record; a saved one is read back', async () => {
    const m = await openGroupManifest(dir, want, ['a.img'])
    assert.deepEqual(m.members, {})
    m.members['a.img'] = {seq: 7, state: 'done'}
    await saveGroupManifest(dir, m)
    assert.deepEqual((await openGroupManifest(dir, want, ['a.img'])).members, {'a.img': {seq: 7, state: 'done'}})
  })

  it("a folder without a record that holds a member's file (from elsewhere) is refused", async () => {
    await fs.mkdir(path.join(dir, 'd'))
    await fs.writeFile(path.join(dir, 'd', 'b.img'), 'x')
    await refused(openGroupManifest(dir, want, ['a.img', 'd/b.img']))
    await assert.rejects(fs.stat(path.join(dir, GROUP_EXPORT_MANIFEST)), 'no record is left behind')
  })

  it('a member named "copying" whose file is there was linked complete: done; without its file: copied again', async () => {
    await saveGroupManifest(dir, {version: 1, ...want, members: {'a.img': {seq: 7, state: 'copying'}, 'd/b.img': {seq: 2, state: 'copying'}}})
    await fs.writeFile(path.join(dir, 'a.img'), 'x')
    const m = await openGroupManifest(dir, want, ['a.img', 'd/b.img'])
    assert.equal(m.members['a.img'].state, 'done')
    assert.equal(m.members['d/b.img'].state, 'copying')
  })

  it('refuses another group, root or point, a member the point does not have, and a record it cannot read', async () => {
    await saveGroupManifest(dir, {version: 1, ...want, members: {'a.img': {seq: 7, state: 'done'}}})
    await refused(openGroupManifest(dir, {...want, groupSeq: 4}, ['a.img']))
    await refused(openGroupManifest(dir, {...want, group: 'db'}, ['a.img']))
    await refused(openGroupManifest(dir, {...want, root: '/srv/other'}, ['a.img']))
    await refused(openGroupManifest(dir, want, ['b.img']))
    for (const bad of ['{', '[]', '{"version":2}', JSON.stringify({version: 1, ...want, members: {'a.img': {seq: 'x', state: 'done'}}})]) {
      await fs.writeFile(path.join(dir, GROUP_EXPORT_MANIFEST), bad)
      await refused(openGroupManifest(dir, want, ['a.img']))
    }
  })
})
