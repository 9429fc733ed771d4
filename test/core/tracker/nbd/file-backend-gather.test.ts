// The file backend gathers the writes asked for in one turn of the event loop: touching ones
// go to the file as one pwritev, each resolves only once written, a short write continues
// where it stopped, a failure fails every write of its run, FUA still syncs.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import {readFile, truncate, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {DiskIoError} from '../../../../src/core/errors.js'
import {FileBackend} from '../../../../src/core/tracker/nbd/file-backend.js'
import {tempDir} from './harness.js'

const KiB = 1024

type WriteV = typeof fs.writev
type Write = typeof fs.write

describe('nbd file backend: gathered writes', () => {
  let cleanup: () => Promise<void>
  let file: string
  let b: FileBackend
  const realWritev = fs.writev
  const realWrite = fs.write
  let calls: string[]

  beforeEach(async () => {
    let dir: string
    ;({dir, cleanup} = await tempDir())
    file = path.join(dir, 'disk.img')
    await writeFile(file, '')
    await truncate(file, 1024 * KiB)
    b = await FileBackend.open(file)
    calls = []
    b.asyncWrites = true // the thread-pool path, which these tests observe; small runs otherwise go synchronously (below)
    fs.writev = ((fd: number, bufs: Buffer[], pos: number, cb: (e: Error | null, n: number) => void) => {
      calls.push(`writev ${bufs.length}@${pos}`)
      return realWritev(fd, bufs, pos, cb)
    }) as unknown as WriteV
    fs.write = ((fd: number, buf: Buffer, off: number, len: number, pos: number, cb: (e: Error | null, n: number) => void) => {
      calls.push(`write ${len}@${pos}`)
      return realWrite(fd, buf, off, len, pos, cb)
    }) as unknown as Write
  })

  afterEach(async () => {
    fs.writev = realWritev
    fs.write = realWrite
    await b.close()
    await cleanup()
  })

  const block = (i: number, len = 4 * KiB) => Buffer.alloc(len, i + 1)

  it('runs of at most 128 KiB are written on the loop thread (no thread-pool round trip); larger ones through the pool; all land', async () => {
    b.asyncWrites = false
    const writes: Array<[number, Buffer]> = []
    for (let i = 0; i < 32; i++) writes.push([i * 4 * KiB, block(i)]) // one run of 128 KiB
    writes.push([512 * KiB, block(40, 129 * KiB)]) // one run past the limit
    await Promise.all(writes.map(([off, data]) => b.write(off, data, false)))
    assert.deepEqual(calls, [`write ${129 * KiB}@${512 * KiB}`], 'only the large run went through the pool')
    const disk = await readFile(file)
    for (const [off, data] of writes) assert.deepEqual(disk.subarray(off, off + data.length), data)
  })

  it('writes asked for together: touching runs as one pwritev each, the rest one by one; all land', async () => {
    const writes: Array<[number, Buffer]> = []
    for (let i = 0; i < 16; i++) writes.push([i * 4 * KiB, block(i)]) // one run of 16
    writes.push([512 * KiB, block(20, 1000)], [600 * KiB, block(21)], [600 * KiB + 4 * KiB, block(22, 3)]) // alone, then a run of 2
    await Promise.all(writes.map(([off, data]) => b.write(off, data, false)))
    assert.deepEqual(calls, [`writev 16@0`, `write 1000@${512 * KiB}`, `writev 2@${600 * KiB}`])
    const disk = await readFile(file)
    for (const [off, data] of writes) assert.deepEqual(disk.subarray(off, off + data.length), data)
  })

  it('a write asked for in a later turn is not held back for the next one', async () => {
    await b.write(0, block(1), false)
    await b.write(4 * KiB, block(2), false)
    assert.deepEqual(calls, ['write 4096@0', 'write 4096@4096'])
  })

  it('a short write continues where it stopped', async () => {
    let first = true
    fs.writev = ((fd: number, bufs: Buffer[], pos: number, cb: (e: Error | null, n: number) => void) => {
      calls.push(`writev ${bufs.length}@${pos}`)
      if (first) {
        first = false
        return realWrite(fd, bufs[0], 0, 1000, pos, cb) // the kernel took 1000 bytes only
      }
      return realWritev(fd, bufs, pos, cb)
    }) as unknown as WriteV
    const data = [block(1), block(2), block(3)]
    await Promise.all(data.map((d, i) => b.write(i * 4 * KiB, d, false)))
    assert.deepEqual(calls, ['writev 3@0', 'writev 3@1000'])
    assert.deepEqual((await readFile(file)).subarray(0, 12 * KiB), Buffer.concat(data))
  })

  it('a failed run fails each of its writes with a DiskIoError naming the offset; other runs land', async () => {
    fs.writev = ((fd: number, bufs: Buffer[], pos: number, cb: (e: Error | null, n: number) => void) => {
      calls.push(`writev ${bufs.length}@${pos}`)
      if (pos === 0) {
        const err = Object.assign(new Error('EIO: i/o error, write'), {code: 'EIO'})
        process.nextTick(cb, err, 0)
        return
      }
      return realWritev(fd, bufs, pos, cb)
    }) as unknown as WriteV
    const results = await Promise.allSettled([
      b.write(0, block(1), false),
      b.write(4 * KiB, block(2), false),
      b.write(64 * KiB, block(3), false),
      b.write(68 * KiB, block(4), false),
    ])
    assert.equal(results[0].status, 'rejected')
    assert.equal(results[1].status, 'rejected')
    for (const r of results.slice(0, 2)) {
      const e = (r as PromiseRejectedResult).reason
      assert.ok(e instanceof DiskIoError && /write on .* at offset 0 failed: EIO/.test(e.message), String(e))
      assert.equal((e.cause as {code?: string}).code, 'EIO')
    }
    assert.deepEqual(
      results.slice(2).map((r) => r.status),
      ['fulfilled', 'fulfilled'],
    )
    assert.deepEqual((await readFile(file)).subarray(64 * KiB, 72 * KiB), Buffer.concat([block(3), block(4)]))
  })

  it('FUA flushes after the write; close waits for gathered writes still running', async () => {
    let syncs = 0
    const fh = (b as unknown as {fh: {datasync(): Promise<void>}}).fh
    const realSync = fh.datasync.bind(fh)
    fh.datasync = async () => {
      syncs++
      return realSync()
    }
    await Promise.all([b.write(0, block(1), true), b.write(4 * KiB, block(2), false)])
    assert.equal(syncs, 1)
    const pending = b.write(8 * KiB, block(3), false)
    await b.close()
    await pending
    assert.deepEqual((await readFile(file)).subarray(8 * KiB, 12 * KiB), block(3))
    b = await FileBackend.open(file) // afterEach closes it
  })
})
