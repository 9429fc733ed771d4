// Tests of src/core/psf/activity-log.ts: the activity log page payload against hand-written
// bytes, round trips over several pages, and every way a log is refused (a bad page, an extent
// past the disk, an out-of-range field).
import assert from 'node:assert/strict'
import {decodeActivityLog, EMPTY_SLOT, emptyActivityLog, encodeAlPayload, alPageOfSlot} from '../../../src/core/psf/activity-log.js'
import {AL_SLOTS_PER_PAGE, PAGE_PAYLOAD_SIZE} from '../../../src/core/psf/layout.js'

/** Page 0 of a 3-slot log: seq 5, lease 0x0102030405 ms, boot 00..0f, slots [3, empty, 7], then empty slots. */
const BOOT = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex')
const GOLDEN_HEAD = [
  '0500000000000000', // seq 5
  '0504030201000000', // lease end 0x0102030405
  '000102030405060708090a0b0c0d0e0f', // the lease's boot id
  '03000000', // slot 0: extent 3
  'ffffffff', // slot 1: empty
  '07000000', // slot 2: extent 7
].join('')

describe('psf activity log codec', () => {
  it('encodes page 0 to the hand-written bytes, the slots past the log as empty', () => {
    const image = {seq: 5, leaseEndMs: 0x0102030405, bootId: BOOT, slots: Uint32Array.from([3, EMPTY_SLOT, 7])}
    const p = encodeAlPayload(image, 0)
    assert.equal(p.length, PAGE_PAYLOAD_SIZE)
    assert.equal(p.subarray(0, 44).toString('hex'), GOLDEN_HEAD)
    assert.ok(p.subarray(44).every((b) => b === 0xff))
    assert.ok(AL_SLOTS_PER_PAGE * 4 + 32 <= PAGE_PAYLOAD_SIZE && (AL_SLOTS_PER_PAGE + 1) * 4 + 32 > PAGE_PAYLOAD_SIZE, 'the slots fill the payload')
  })

  it('decodes the hand-written page', () => {
    const p = Buffer.alloc(PAGE_PAYLOAD_SIZE, 0xff)
    Buffer.from(GOLDEN_HEAD, 'hex').copy(p)
    assert.deepEqual(decodeActivityLog([p], 3, 8), {seq: 5, leaseEndMs: 0x0102030405, bootId: BOOT, slots: Uint32Array.from([3, EMPTY_SLOT, 7])})
  })

  it('round-trips a log over three pages; the lease is page 0s, the seq the newest page', () => {
    const n = 2 * AL_SLOTS_PER_PAGE + 5
    const image = emptyActivityLog(n)
    for (let s = 0; s < n; s += 3) image.slots[s] = s * 2
    image.seq = 9
    image.leaseEndMs = 1700000000000
    image.bootId = Buffer.from(BOOT)
    const pages = [0, 1, 2].map((p) => encodeAlPayload(image, p))
    assert.deepEqual(decodeActivityLog(pages, n, 2 * n), image)
    assert.equal(alPageOfSlot(AL_SLOTS_PER_PAGE), 1)
    const older = encodeAlPayload({...image, seq: 3}, 1)
    assert.equal((decodeActivityLog([pages[0], older, pages[2]], n, 2 * n) as {seq: number}).seq, 9)
  })

  it('refuses a page that failed its checksum, an extent past the disk, an out-of-range field', () => {
    const image = {seq: 1, leaseEndMs: 2, bootId: Buffer.alloc(16), slots: Uint32Array.from([1, 2])}
    const good = encodeAlPayload(image, 0)
    assert.match(decodeActivityLog([undefined], 2, 4) as string, /page 0 of the activity log failed its checksum/)
    assert.match(decodeActivityLog([good], 2, 2) as string, /slot 1 .* names extent 2, past the disk's 2/)
    const huge = Buffer.from(good)
    huge.writeBigUInt64LE(2n ** 60n, 8)
    assert.match(decodeActivityLog([huge], 2, 4) as string, /out-of-range/)
  })
})
