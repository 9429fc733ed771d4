// The file backend on a real sparse file, with the native hole helpers and with their
// pure-JS fallbacks forced.

import assert from 'node:assert/strict'
import {readFile, truncate, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {DiskIoError, UsageError} from '../../../../src/core/errors.js'
import {__forceFallbackForTests, nativeAvailable} from '../../../../src/core/native/binding.js'
import {FileBackend} from '../../../../src/core/tracker/nbd/file-backend.js'
import {tempDir} from './harness.js'

const MiB = 1024 * 1024
const simplify = (xs: Array<{length: number; hole: boolean}>): string => xs.map((x) => `${x.length}${x.hole ? 'h' : 'd'}`).join(' ')

describe('nbd file backend', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let file: string
  let b: FileBackend

  beforeEach(async () => {
    ;({dir, cleanup} = await tempDir())
    file = path.join(dir, 'vm disk.img')
    await writeFile(file, '')
    await truncate(file, 4 * MiB)
    b = await FileBackend.open(file)
  })

  afterEach(async () => {
    __forceFallbackForTests(false)
    await b.close()
    await cleanup()
  })

  it('reports size and the file name as export name', async () => {
    assert.equal(b.size, 4 * MiB)
    assert.equal(b.exportName, 'vm disk.img')
    const named = await FileBackend.open(file, {exportName: 'vm1', readOnly: true})
    assert.equal(named.exportName, 'vm1')
    await named.close()
  })

  it('refuses a missing disk and a directory as usage errors', async () => {
    await assert.rejects(FileBackend.open(path.join(dir, 'nope.img')), (e: unknown) => e instanceof UsageError && /does not exist/.test(e.message))
    await assert.rejects(FileBackend.open(dir, {readOnly: true}), (e: unknown) => e instanceof UsageError && e.code === 'DISK_TYPE')
  })

  it('writes and reads back at odd offsets, with FUA and flush', async () => {
    const data = Buffer.from(Array.from({length: 3001}, (_, i) => i % 251))
    await b.write(12345, data, true)
    await b.flush()
    assert.deepEqual(await b.read(12345, 3001), data)
    const disk = await readFile(file)
    assert.deepEqual(disk.subarray(12345, 12345 + 3001), data)
  })

  it('reports holes and data from SEEK_DATA/SEEK_HOLE', async function () {
    if (!nativeAvailable) this.skip()
    await b.write(MiB, Buffer.alloc(64 * 1024, 1), false)
    assert.equal(simplify(await b.blockStatus(0, 4 * MiB)), `${MiB}h ${64 * 1024}d ${3 * MiB - 64 * 1024}h`)
    assert.equal(simplify(await b.blockStatus(MiB + 4096, 8192)), '8192d')
  })

  it('trim and write-zeroes punch holes; write-zeroes with NO_HOLE keeps the range allocated', async function () {
    if (!nativeAvailable) this.skip()
    await b.write(0, Buffer.alloc(MiB, 7), false)
    await b.trim(0, 256 * 1024, false)
    await b.writeZeroes(256 * 1024, 256 * 1024, {fua: true, noHole: false})
    await b.writeZeroes(512 * 1024, 256 * 1024, {fua: false, noHole: true})
    assert.ok((await b.read(0, 768 * 1024)).every((x) => x === 0))
    assert.ok((await b.read(768 * 1024, 256 * 1024)).every((x) => x === 7))
    assert.equal(simplify(await b.blockStatus(0, MiB)), `${512 * 1024}h ${512 * 1024}d`)
  })

  it('without the native helpers: trim writes zeros and everything is data', async () => {
    __forceFallbackForTests(true)
    await b.write(0, Buffer.alloc(8192, 9), false)
    await b.trim(1000, 5000, false)
    const got = await b.read(0, 8192)
    assert.ok(got.subarray(0, 1000).every((x) => x === 9))
    assert.ok(got.subarray(1000, 6000).every((x) => x === 0))
    assert.ok(got.subarray(6000).every((x) => x === 9))
    assert.equal(simplify(await b.blockStatus(0, 4 * MiB)), `${4 * MiB}d`)
  })

  it('fails a read past a disk that shrank under it with a DiskIoError naming the offset', async () => {
    await truncate(file, MiB)
    await assert.rejects(b.read(MiB - 10, 100), (e: unknown) => e instanceof DiskIoError && /short read .* at offset 1048576/.test(e.message))
  })
})
