// Tests of src/core/native/fanotify.ts: what the drain returns, the typed refusals, and that a
// bad argument or a dead fd is an error, never an "unavailable" or an empty answer. Writers
// from other processes, modes and users are tested through tracker/outside-writes.test.ts.

import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import {DiskIoError} from '../../../src/core/errors.js'
import {__forceFallbackForTests, nativeAvailable} from '../../../src/core/native/binding.js'
import {FAN_CLOSE_WRITE, FAN_MODIFY, fanotifyBuilt, openFanotify, readFanotify} from '../../../src/core/native/fanotify.js'
import {FdFixtures} from './fd-fixtures.js'

describe('native/fanotify', function () {
  let f: FdFixtures
  let file: string

  before(function () {
    if (!nativeAvailable || !fanotifyBuilt()) this.skip()
    f = new FdFixtures('vdrep-fanotify-')
    file = f.filledFile('disk.img', 64 * 1024, 0)
  })

  after(() => f?.remove())

  function open(mask = FAN_MODIFY | FAN_CLOSE_WRITE): number {
    const r = openFanotify(file, mask)
    if (!r.ok) throw new Error(`fanotify refused: ${r.unavailable.message}`)
    return r.fd
  }

  it('drains each writer once with the union of its bits, then reads empty without blocking', () => {
    const fd = open()
    try {
      const w = f.open(file)
      for (let i = 0; i < 100; i++) fs.writeSync(w, 'x', i)
      fs.closeSync(w)
      const child = spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=512', 'count=1', 'conv=notrunc', 'status=none'])
      const got = readFanotify(fd)
      assert.deepEqual(
        [...got.writers].sort((a, b) => a[0] - b[0]),
        [
          [process.pid, FAN_MODIFY | FAN_CLOSE_WRITE],
          [child.pid, FAN_MODIFY | FAN_CLOSE_WRITE],
        ].sort((a, b) => a[0] - b[0]),
      )
      assert.equal(got.overflow, false)
      assert.equal(got.more, false)
      assert.deepEqual(readFanotify(fd), {writers: new Map(), overflow: false, more: false})
    } finally {
      fs.closeSync(fd)
    }
  })

  it('marks only what it was asked for: FAN_CLOSE_WRITE alone ignores writes until the close', () => {
    const fd = open(FAN_CLOSE_WRITE)
    try {
      const w = fs.openSync(file, 'r+')
      fs.writeSync(w, 'y', 0)
      assert.equal(readFanotify(fd).writers.size, 0)
      fs.closeSync(w)
      assert.deepEqual([...readFanotify(fd).writers], [[process.pid, FAN_CLOSE_WRITE]])
    } finally {
      fs.closeSync(fd)
    }
  })

  it('a refusal is a value naming the errno and the call', () => {
    const r = openFanotify(path.join(f.dir, 'missing.img'), FAN_MODIFY, 'fid')
    assert.deepEqual(r.ok ? r : {code: r.unavailable.code, syscall: r.unavailable.syscall}, {code: 'ENOENT', syscall: 'fanotify_mark'})
  })

  it('without the addon: NO_ADDON; a read then throws DiskIoError', () => {
    __forceFallbackForTests(true)
    try {
      const r = openFanotify(file, FAN_MODIFY)
      assert.equal(!r.ok && r.unavailable.code, 'NO_ADDON')
      assert.throws(() => readFanotify(0), DiskIoError)
    } finally {
      __forceFallbackForTests(false)
    }
  })

  it('a dead fd or a non-fanotify fd is DiskIoError; a bad argument is a TypeError, not a refusal', () => {
    const fd = open()
    fs.closeSync(fd)
    assert.throws(
      () => readFanotify(fd),
      (err: unknown) => err instanceof DiskIoError && /EBADF/.test(err.message),
    )
    const plain = f.open(file)
    assert.throws(
      () => readFanotify(plain),
      (err: unknown) => err instanceof DiskIoError && /EPROTO/.test(err.message),
    )
    assert.throws(() => openFanotify(file, 0), TypeError)
  })
})
