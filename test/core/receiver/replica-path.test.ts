// Tests of src/core/receiver/replica-path.ts in temp folders: the receiver writes only under
// its root, whatever `..`, absolute paths, symlinked directories or a symlinked final
// component say.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {UsageError} from '../../../src/core/errors.js'
import {PathOutsideRootError, resolveReplicaPath} from '../../../src/core/receiver/replica-path.js'

let base: string
let root: string
let outside: string

const refused = (why?: RegExp) => (e: unknown) =>
  e instanceof PathOutsideRootError && e instanceof UsageError && e.code === 'PATH_OUTSIDE_ROOT' && e.exitCode === 2 && (!why || why.test(e.message))

describe('resolveReplicaPath', () => {
  beforeEach(async () => {
    base = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'vdrep-root-')))
    root = path.join(base, 'root')
    outside = path.join(base, 'outside')
    await fs.mkdir(path.join(root, 'vms', 'web'), {recursive: true})
    await fs.mkdir(outside)
    await fs.writeFile(path.join(outside, 'secret.img'), 'x')
  })
  afterEach(async () => {
    await fs.rm(base, {recursive: true, force: true})
  })

  it('accepts a new file in the root and in a nested folder', async () => {
    assert.equal(await resolveReplicaPath(root, 'disk.img'), path.join(root, 'disk.img'))
    assert.equal(await resolveReplicaPath(root, 'vms/web/disk.img'), path.join(root, 'vms', 'web', 'disk.img'))
    assert.equal(await resolveReplicaPath(root, 'vms//web/./disk.img'), path.join(root, 'vms', 'web', 'disk.img'))
  })

  it('accepts an existing regular file', async () => {
    await fs.writeFile(path.join(root, 'vms', 'web', 'disk.img'), 'data')
    assert.equal(await resolveReplicaPath(root, 'vms/web/disk.img'), path.join(root, 'vms', 'web', 'disk.img'))
  })

  it('refuses any path with a .. component, even one that stays inside', async () => {
    for (const p of ['../outside/secret.img', 'vms/../disk.img', 'vms/web/../../../x', '..', 'vms\\..\\..\\x']) {
      await assert.rejects(resolveReplicaPath(root, p), refused(/'\.\.'/), p)
    }
  })

  it('refuses an absolute path outside the root', async () => {
    for (const p of [path.join(outside, 'secret.img'), '/etc/passwd', `${root}-sibling/disk.img`, root]) {
      await assert.rejects(resolveReplicaPath(root, p), refused(/not under the root/), p)
    }
  })

  it('accepts an absolute path inside the root, as given or through a symlinked root', async () => {
    assert.equal(await resolveReplicaPath(root, path.join(root, 'vms', 'a.img')), path.join(root, 'vms', 'a.img'))
    const alias = path.join(base, 'alias')
    await fs.symlink(root, alias)
    assert.equal(await resolveReplicaPath(alias, path.join(alias, 'vms', 'a.img')), path.join(root, 'vms', 'a.img'))
    assert.equal(await resolveReplicaPath(alias, path.join(root, 'vms', 'a.img')), path.join(root, 'vms', 'a.img'))
    assert.equal(await resolveReplicaPath(alias, 'vms/a.img'), path.join(root, 'vms', 'a.img'))
  })

  it('refuses a symlinked directory that leads out of the root', async () => {
    await fs.symlink(outside, path.join(root, 'vms', 'escape'))
    await assert.rejects(resolveReplicaPath(root, 'vms/escape/secret.img'), refused(/symlink that leads out/))
    await assert.rejects(resolveReplicaPath(root, 'vms/escape/new.img'), refused(/symlink that leads out/))
    await assert.rejects(resolveReplicaPath(root, path.join(root, 'vms', 'escape', 'new.img')), refused(/symlink that leads out/))
  })

  it('accepts a symlinked directory that stays inside the root, at its real path', async () => {
    await fs.symlink(path.join(root, 'vms', 'web'), path.join(root, 'web'))
    assert.equal(await resolveReplicaPath(root, 'web/disk.img'), path.join(root, 'vms', 'web', 'disk.img'))
  })

  it('refuses a symlink as the final component, wherever it points (or dangles)', async () => {
    await fs.symlink(path.join(outside, 'secret.img'), path.join(root, 'out.img'))
    await fs.writeFile(path.join(root, 'real.img'), 'x')
    await fs.symlink(path.join(root, 'real.img'), path.join(root, 'in.img'))
    await fs.symlink(path.join(base, 'nowhere'), path.join(root, 'dangling.img'))
    for (const p of ['out.img', 'in.img', 'dangling.img']) await assert.rejects(resolveReplicaPath(root, p), refused(/is a symlink/), p)
  })

  it('refuses a directory as the replica', async () => {
    await assert.rejects(resolveReplicaPath(root, 'vms/web'), refused(/not a regular file/))
  })

  it('refuses a path whose folder does not exist', async () => {
    await assert.rejects(resolveReplicaPath(root, 'nope/disk.img'), refused(/does not exist/))
  })

  it('refuses an empty path and a NUL byte', async () => {
    await assert.rejects(resolveReplicaPath(root, ''), refused(/NUL/))
    await assert.rejects(resolveReplicaPath(root, 'disk.img\0.psf'), refused(/NUL/))
  })

  it('refuses the names the receiver keeps beside a replica', async () => {
    for (const name of ['web.img.vdrep', 'web.img.vdrep-journal', 'web.img.vdrep.lock', 'web.img.vdrep.cow', '.web.img.vdrep.tmp-123-abcdef']) {
      await assert.rejects(resolveReplicaPath(root, name), refused(/keeps for its own files/), name)
    }
    assert.equal(await resolveReplicaPath(root, 'web.vdrep.img'), path.join(root, 'web.vdrep.img'))
    assert.equal(await resolveReplicaPath(root, 'backup.tmp-2024'), path.join(root, 'backup.tmp-2024'))
  })

  it('refuses a folder on the way that another user could write, or that another user owns', async () => {
    await fs.chmod(path.join(root, 'vms'), 0o775)
    await assert.rejects(resolveReplicaPath(root, 'vms/web/disk.img'), refused(/vms is writable by other users \(mode 775\)/))
    await fs.chmod(path.join(root, 'vms'), 0o755)
    await fs.chmod(root, 0o1777) // sticky does not help: a new name (the journal's) can still be planted
    await assert.rejects(resolveReplicaPath(root, 'disk.img'), refused(/writable by other users/))
    await fs.chmod(root, 0o755)
    assert.equal(await resolveReplicaPath(root, 'vms/web/disk.img'), path.join(root, 'vms', 'web', 'disk.img'))
    if (process.getuid?.() === 0) {
      await fs.chown(path.join(root, 'vms', 'web'), 65534, 65534)
      await assert.rejects(resolveReplicaPath(root, 'vms/web/disk.img'), refused(/belongs to uid 65534/))
    }
  })

  it('refuses the root itself', async () => {
    await assert.rejects(resolveReplicaPath(root, '.'), refused(/not under the root/))
  })
})
