// Tests of src/core/native/performance-hints.ts: writeback started early and freed memory
// kept for reuse, with the addon; nothing (and no error) without it.

import assert from 'node:assert/strict'
import {execFileSync, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import {__forceFallbackForTests, nativeAvailable} from '../../../src/core/native/binding.js'
import * as native from '../../../src/core/native/performance-hints.js'
import {FdFixtures, isAll, MiB, readAt} from './fd-fixtures.js'

describe('core/native/performance-hints', function () {
  let f: FdFixtures
  before(() => {
    f = new FdFixtures('vdrep-hints-')
  })
  afterEach(() => {
    f.closeAll()
    __forceFallbackForTests(false)
  })
  after(() => f.remove())

  describe('with the addon', function () {
    before(function () {
      if (!nativeAvailable) this.skip()
    })

    it('startWriteback resolves on a written file (data unchanged), rejects a bad fd or a pipe with its errno', async () => {
      const fd = f.open(f.filledFile('writeback', 4 * MiB, 0x3c))
      fs.writeSync(fd, Buffer.alloc(MiB, 0x4d), 0, MiB, MiB)
      await native.startWriteback(fd, 0, 4 * MiB)
      await native.startWriteback(fd, 0, 0) // 0 means "to the end of the file"
      assert.ok(isAll(readAt(fd, 0, MiB), 0x3c))
      assert.ok(isAll(readAt(fd, MiB, MiB), 0x4d))
      const closed = fs.openSync(f.filledFile('writeback-closed', 4096, 1), 'r+')
      fs.closeSync(closed)
      await assert.rejects(native.startWriteback(closed, 0, 4096) as Promise<void>, {code: 'EBADF'})
      const fifo = path.join(f.dir, 'writeback.fifo')
      execFileSync('mkfifo', [fifo])
      const pipe = f.open(fifo, 'r+') // O_RDWR: Linux opens a FIFO so without waiting for a peer
      await assert.rejects(native.startWriteback(pipe, 0, 4096) as Promise<void>, {code: 'ESPIPE'})
      assert.throws(() => native.startWriteback(fd, -1, 10), RangeError)
    })
    it('keepFreedMemory: freed large buffers are reused instead of fresh pages (fewer page faults), once per process', () => {
      const nativeUrl = new URL('../../../src/core/native/performance-hints.js', import.meta.url).href
      const faults = (tune: boolean) => {
        const script = `const m = await import(${JSON.stringify(nativeUrl)})
          const tuned = ${tune} ? m.keepFreedMemory() && m.keepFreedMemory() : false
          const before = process.resourceUsage().minorPageFault
          for (let i = 0; i < 60; i++) { let b = Buffer.allocUnsafeSlow(4 << 20); b.fill(i); b = null; globalThis.gc() }
          console.log(JSON.stringify({tuned, faults: process.resourceUsage().minorPageFault - before}))`
        const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {encoding: 'utf8'})
        assert.equal(r.status, 0, r.stderr)
        return JSON.parse(r.stdout) as {tuned: boolean; faults: number}
      }
      const plain = faults(false)
      const tuned = faults(true)
      assert.equal(tuned.tuned, true)
      // 60 buffers of 4 MiB: ~61k pages when each is a fresh mmap, one buffer's worth when reused.
      // Judged against one buffer's worth, not against the untuned run: glibc's dynamic mmap
      // threshold sometimes starts reusing there too, depending on when V8 frees the backing
      // stores (a clean-clone CI run saw 4278 untuned against 2239 tuned; measured here, tuned
      // is 2260-2271 every time, untuned 4291-61k).
      const perBuffer = (4 << 20) / 4096
      assert.ok(tuned.faults < 3 * perBuffer, `page faults: ${tuned.faults} tuned (${plain.faults} untuned), more than 3 buffers' worth (${3 * perBuffer})`)
    })

    it('trimFreedMemory: freed memory kept by keepFreedMemory goes back to the kernel', () => {
      const nativeUrl = new URL('../../../src/core/native/performance-hints.js', import.meta.url).href
      const script = `const m = await import(${JSON.stringify(nativeUrl)})
        m.keepFreedMemory()
        let held = Array.from({length: 64}, (_, i) => Buffer.alloc(1 << 20, i))
        held = null
        globalThis.gc()
        await new Promise((r) => setTimeout(r, 100))
        const kept = process.memoryUsage().rss
        const trimmed = m.trimFreedMemory()
        console.log(JSON.stringify({trimmed, kept, after: process.memoryUsage().rss}))`
      const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {encoding: 'utf8'})
      assert.equal(r.status, 0, r.stderr)
      const m = JSON.parse(r.stdout) as {trimmed: boolean; kept: number; after: number}
      assert.equal(m.trimmed, true)
      // 64 MiB freed and kept mapped (under the 256 MiB trim threshold), then handed back.
      assert.ok(m.after < m.kept - 32 * MiB, `resident ${m.kept / MiB} MiB before the trim, ${m.after / MiB} after`)
    })
  })

  describe('fallbacks (forced)', () => {
    beforeEach(() => __forceFallbackForTests(true))

    it('startWriteback is undefined (durability is left to fdatasync)', () => {
      const fd = f.open(f.filledFile('fb-writeback', 4096, 1))
      assert.equal(native.startWriteback(fd, 0, 4096), undefined)
    })
  })
})
