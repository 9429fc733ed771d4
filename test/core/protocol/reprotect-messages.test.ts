// Tests of src/core/protocol/reprotect-messages.ts against hand-written bytes: the golden
// frames, round trips, every truncation and a trailing byte, every byte flipped (refused or a
// different value, never a crash), and the hostile values: unknown flags, an OWED piece for
// another disk, off its alignment, past the end, with bits set beyond its length.
import assert from 'node:assert/strict'
import {ProtocolError} from '../../../src/core/errors.js'
import * as r from '../../../src/core/protocol/reprotect-messages.js'
import {owedPieces, OwedCollector} from '../../../src/core/failover/owed.js'
import {Bitmap} from '../../../src/core/psf/bitmap.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const malformed = (field?: RegExp) => (e: unknown) => e instanceof ProtocolError && e.code === 'FRAME_MALFORMED' && (!field || field.test(e.message))
const OLD = '00112233445566778899aabbccddeeff'
const PREV = 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf'

describe('protocol/reprotect-messages', () => {
  const golden = hex(`${OLD} ${PREV} 0700000000000000 02000000 01000000`)
  const value = {oldReplicaId: hex(OLD), linkPrev: hex(PREV), seq: 7, epoch: 2, flags: r.ReprotectFlag.DISCARD_DIVERGENT}

  it('REPROTECT: golden bytes both ways', () => {
    assert.ok(r.encodeReprotect(value).equals(golden))
    assert.deepEqual(r.decodeReprotect(golden), value)
  })

  it('REPROTECT: every truncation and a trailing byte are malformed; unknown flag bits refused', () => {
    for (let n = 0; n < golden.length; n++) assert.throws(() => r.decodeReprotect(golden.subarray(0, n)), malformed())
    assert.throws(() => r.decodeReprotect(Buffer.concat([golden, Buffer.from([0])])), malformed())
    const bad = Buffer.from(golden)
    bad.writeUInt32LE(2, 44)
    assert.throws(() => r.decodeReprotect(bad), malformed(/flags/))
    for (let i = 0; i < golden.length; i++) {
      const f = Buffer.from(golden)
      f[i] ^= 0xff
      try {
        assert.notDeepEqual(r.decodeReprotect(f), value)
      } catch (e) {
        assert.ok(e instanceof ProtocolError, `byte ${i}: ${String(e)}`)
      }
    }
  })

  it('OWED: golden bytes both ways', () => {
    // blocks 0..11 of a 12-block disk, blocks 1, 8 and 11 owed
    const b = hex('0000000000000000 0c00000000000000 0c000000 02 09')
    const v = {first: 0, total: 12, n: 12, bits: hex('0209')}
    assert.ok(r.encodeOwed(v).equals(b))
    assert.deepEqual(r.decodeOwed(b, 12), v)
    for (let n = 0; n < b.length; n++) assert.throws(() => r.decodeOwed(b.subarray(0, n), 12), malformed())
    assert.throws(() => r.decodeOwed(Buffer.concat([b, Buffer.from([0])]), 12), malformed())
  })

  it('OWED: another disk, a misaligned or overlong piece, bits past n: refused', () => {
    assert.throws(() => r.decodeOwed(hex('0000000000000000 0c00000000000000 0c000000 0000'), 13), malformed(/total/))
    assert.throws(() => r.decodeOwed(hex('0400000000000000 0c00000000000000 08000000 00'), 12), malformed(/first/))
    assert.throws(() => r.decodeOwed(hex('0800000000000000 0c00000000000000 08000000 00'), 12), malformed(/pass/))
    assert.throws(() => r.decodeOwed(hex('0000000000000000 0c00000000000000 00000000'), 12), malformed(/n/))
    assert.throws(() => r.decodeOwed(hex('0000000000000000 0c00000000000000 0c000000 00 10'), 12), malformed(/past n/))
    assert.throws(() => r.decodeOwed(hex('0000000000000000 0c00000000000000 ffffffff'), 12), malformed(/n/))
  })

  it('pieces of a large bitmap cover it in order and rebuild it; out of order is refused', () => {
    const count = r.MAX_OWED_BITS * 2 + 13
    const bm = new Bitmap(count)
    for (const b of [0, 7, r.MAX_OWED_BITS - 1, r.MAX_OWED_BITS, count - 1]) bm.set(b)
    const pieces = owedPieces(bm)
    assert.equal(pieces.length, 3)
    const c = new OwedCollector(count)
    for (const p of pieces) c.add(r.decodeOwed(r.encodeOwed(p), count))
    assert.ok(c.done)
    assert.deepEqual([...c.bitmap.setBlocks()], [...bm.setBlocks()])
    const c2 = new OwedCollector(count)
    assert.throws(
      () => c2.add(pieces[1]),
      (e: unknown) => e instanceof ProtocolError && e.code === 'FRAME_UNEXPECTED',
    )
  })
})
