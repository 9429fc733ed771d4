// The order that makes kill -9 safe: for a write that dirties a new block, the .psf page
// write and its sync finish before the data write is issued; a write to an already-dirty
// block goes straight to the disk; reads, flushes and block status never touch the .psf.
import assert from 'node:assert/strict'
import {Bitmap} from '../../../src/core/psf/bitmap.js'
import type {PsfFile} from '../../../src/core/psf/psf-file.js'
import {DirtyLog} from '../../../src/core/tracker/dirty-log.js'
import {Freezer} from '../../../src/core/tracker/freezer.js'
import {RecordingBackend} from '../../../src/core/tracker/recording-backend.js'
import {WriteGate} from '../../../src/core/tracker/write-gate.js'
import {MemoryBackend} from './nbd/harness.js'

const BS = 4096

function setup(blocks = 64) {
  const events: string[] = []
  const psf = {
    path: '/fake.psf',
    async writeBitmap(region: number, _bm: Bitmap, pages?: Iterable<number>) {
      events.push(`psf:${region}:${[...(pages ?? [])].join(',')}:start`)
      await new Promise((r) => setTimeout(r, 5))
      events.push('psf:synced')
    },
  }
  const inner = new MemoryBackend(blocks * BS)
  const origWrite = inner.write.bind(inner)
  inner.write = async (offset: number, data: Buffer) => {
    events.push(`write@${offset}`)
    return origWrite(offset, data)
  }
  const log = new DirtyLog(psf as unknown as PsfFile, new Bitmap(blocks), new Bitmap(blocks))
  const gate = new WriteGate()
  const freezer = new Freezer(log, gate, inner, {blockSize: BS, diskSize: blocks * BS, blockCount: blocks}, {cowPath: '/nonexistent/cow', cowLimit: 1 << 20})
  const backend = new RecordingBackend(inner, log, gate, freezer, BS)
  return {events, inner, log, backend}
}

describe('tracker recording backend', () => {
  it('persists the bit of a newly dirtied block before issuing the data write', async () => {
    const {events, backend, log} = setup()
    await backend.write(BS - 1, Buffer.from([1, 2]), false) // blocks 0 and 1
    assert.deepEqual(events, ['psf:1:0:start', 'psf:synced', `write@${BS - 1}`])
    assert.deepEqual([...log.active.setBlocks()], [0, 1])
  })

  it('a write to already-dirty blocks costs no .psf write', async () => {
    const {events, backend} = setup()
    await backend.write(0, Buffer.alloc(10), false)
    events.length = 0
    await backend.write(5, Buffer.alloc(10), true)
    assert.deepEqual(events, ['write@5'])
  })

  it('concurrent writes to new blocks share one .psf batch, and none is issued before it synced', async () => {
    const {events, backend, log} = setup()
    await Promise.all([0, 3, 9, 17].map((b) => backend.write(b * BS + 7, Buffer.alloc(100), false)))
    const synced = events.indexOf('psf:synced')
    assert.equal(events.filter((e) => e.startsWith('psf:1')).length, 1, events.join(' '))
    for (const e of events.filter((x) => x.startsWith('write@'))) assert.ok(events.indexOf(e) > synced, `${e} before the sync: ${events.join(' ')}`)
    assert.deepEqual([...log.active.setBlocks()], [0, 3, 9, 17])
    assert.equal(log.stats.batches, 1)
  })

  it('trim and write-zeroes mark the blocks they touch; read, flush, block status mark nothing', async () => {
    const {backend, log} = setup()
    await backend.read(0, BS * 4)
    await backend.flush()
    await backend.blockStatus(0, BS * 4)
    assert.equal(log.active.count(), 0)
    await backend.trim(BS * 10, BS * 2, false) // blocks 10, 11
    await backend.writeZeroes(BS * 20 + 1, BS, {fua: false, noHole: true}) // blocks 20, 21
    assert.deepEqual([...log.active.setBlocks()], [10, 11, 20, 21])
    assert.deepEqual(backend.counters, {writes: 0, bytesWritten: 0, zeroes: 1, trims: 1, flushes: 1})
  })

  it('a write whose bit cannot be persisted is refused and never reaches the disk', async () => {
    const {backend, inner} = setup()
    const log = (backend as unknown as {log: DirtyLog}).log
    ;(log as unknown as {store: {writeBitmap: () => Promise<void>}}).store.writeBitmap = async () => {
      throw Object.assign(new Error('EIO'), {code: 'EIO'})
    }
    await assert.rejects(backend.write(0, Buffer.from([9]), false), /cannot update the change record/)
    await assert.rejects(backend.trim(BS * 3, 10, false), /cannot update the change record/)
    assert.equal((backend as unknown as {gate: WriteGate}).gate.count, 0, 'a refused write must leave the gate')
    assert.equal(inner.data[0], 0)
    assert.ok(!inner.calls.some((c) => c.startsWith('write')))
  })
})
