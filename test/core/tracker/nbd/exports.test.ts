// One NBD server, several exports (a group's test views): clients pick an export by name, the
// list names them all, the empty name is the first, and two exports of one name are refused.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import path from 'node:path'
import {promisify} from 'node:util'
import {UsageError} from '../../../../src/core/errors.js'
import {NbdServer} from '../../../../src/core/tracker/nbd/server.js'
import {MemoryBackend, tempDir} from './harness.js'

const run = promisify(execFile)

describe('nbd server: several exports', () => {
  it('serves each export by its name to qemu-io; nbdinfo lists them; the empty name is the first', async () => {
    const {dir, cleanup} = await tempDir()
    const a = new MemoryBackend(1 << 20, 'a.img')
    const b = new MemoryBackend(2 << 20, 'sub/b.img')
    const server = new NbdServer([a, b])
    try {
      const sock = path.join(dir, 'x.sock')
      await server.listen(`unix:${sock}`)
      await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 4096 4096', `nbd+unix:///sub/b.img?socket=${sock}`])
      assert.equal(b.data[4096], 0x5a)
      assert.equal(
        a.data.every((x) => x === 0),
        true,
        'a write to b reached a',
      )
      await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 512', `nbd+unix://?socket=${sock}`])
      assert.equal(a.data[0], 0x11)
      const listed = (await run('nbdinfo', ['--list', '--json', `nbd+unix://?socket=${sock}`])).stdout
      const names = (JSON.parse(listed) as {exports: Array<{'export-name': string; 'export-size': number}>}).exports
      assert.deepEqual(
        names.map((e) => [e['export-name'], e['export-size']]),
        [
          ['a.img', 1 << 20],
          ['sub/b.img', 2 << 20],
        ],
      )
      await assert.rejects(run('qemu-io', ['-f', 'raw', '-c', 'read 0 512', `nbd+unix:///c.img?socket=${sock}`]))
    } finally {
      await server.close()
      await cleanup()
    }
  })

  it('refuses no export, and two exports of one name', () => {
    const usage = (e: unknown) => e instanceof UsageError
    assert.throws(() => new NbdServer([]), usage)
    assert.throws(() => new NbdServer([new MemoryBackend(4096, 'x'), new MemoryBackend(4096, 'x')]), usage)
  })
})
