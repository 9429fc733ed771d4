import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {canonicalDisk, controlSocketPath, cowPathFor, MAX_BESIDE_SOCKET_PATH} from '../../../src/core/tracker/paths.js'
import {tempDir} from '../../helpers/disks.js'

describe('tracker paths', () => {
  it('puts the control socket beside a disk with a short path', () => {
    assert.equal(controlSocketPath('/vm/web.img'), '/vm/web.img.vdrep.sock')
    assert.equal(cowPathFor('/vm/web.img'), '/vm/web.img.vdrep.cow')
  })

  it('moves it to /run/vdrep, named by a hash of the path, when the path is too long', () => {
    const long = `/${'d'.repeat(90)}/disk.img`
    assert.ok(Buffer.byteLength(`${long}.vdrep.sock`) > MAX_BESIDE_SOCKET_PATH)
    const p = controlSocketPath(long)
    assert.match(p, /^\/run\/vdrep\/[0-9a-f]{40}\.sock$/)
    assert.equal(controlSocketPath(long), p, 'the same disk always gets the same socket')
    assert.notEqual(controlSocketPath(`${long}2`), p)
    assert.ok(Buffer.byteLength(p) < 108)
    // Multi-byte names count in bytes, not characters.
    const wide = `/${'é'.repeat(45)}/d.img`
    assert.match(controlSocketPath(wide), /^\/run\/vdrep\//)
  })

  it('resolves symlinks so every command finds the same socket', async () => {
    const dir = await tempDir('vdrep-paths-')
    try {
      await fs.writeFile(path.join(dir, 'real.img'), '')
      await fs.symlink(path.join(dir, 'real.img'), path.join(dir, 'link.img'))
      assert.equal(await canonicalDisk(path.join(dir, 'link.img')), await fs.realpath(path.join(dir, 'real.img')))
      assert.equal(await canonicalDisk(path.join(dir, 'missing.img')), path.join(dir, 'missing.img'))
    } finally {
      await fs.rm(dir, {recursive: true, force: true})
    }
  })
})
