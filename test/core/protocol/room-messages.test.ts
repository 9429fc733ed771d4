// ROOM_INFO (src/core/protocol/room-messages.ts): a hand-written golden frame, every field's
// refusal, every truncation, and POINTS_REQUEST op ROOM (retention must be empty).
import assert from 'node:assert/strict'
import {decodeRoomInfo, encodeRoomInfo, ROOM_INFO_SIZE, RoomFlag, RoomReplica} from '../../../src/core/protocol/room-messages.js'
import {decodePointsRequest, PointsOp} from '../../../src/core/protocol/points-messages.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const malformed = (e: Error & {code?: string}) => e.code === 'FRAME_MALFORMED'

// THIS_SOURCE, no flags, size 16 MiB, allocated 8 MiB, 1 GiB free of 4 GiB.
const GOLDEN = hex('01 00 0000000100000000 0000800000000000 0000004000000000 0000000001000000')

describe('ROOM_INFO', () => {
  it('decodes a hand-written frame and encodes the same bytes', () => {
    assert.equal(GOLDEN.length, ROOM_INFO_SIZE)
    const m = decodeRoomInfo(GOLDEN)
    assert.deepEqual(m, {replica: RoomReplica.THIS_SOURCE, flags: 0, replicaSize: 16 << 20, replicaAllocated: 8 << 20, freeBytes: 2 ** 30, totalBytes: 2 ** 32})
    assert.deepEqual(encodeRoomInfo(m), GOLDEN)
  })

  it('refuses every truncation, trailing bytes, reserved kinds and flags, and impossible sizes', () => {
    for (let n = 0; n < GOLDEN.length; n++) assert.throws(() => decodeRoomInfo(GOLDEN.subarray(0, n)), malformed, `cut at ${n}`)
    assert.throws(() => decodeRoomInfo(Buffer.concat([GOLDEN, Buffer.alloc(1)])), malformed)
    for (const kind of [5, 0xff]) assert.throws(() => decodeRoomInfo(Buffer.concat([Buffer.from([kind]), GOLDEN.subarray(1)])), malformed)
    for (const flags of [2, 0x80])
      assert.throws(() => decodeRoomInfo(Buffer.concat([GOLDEN.subarray(0, 1), Buffer.from([flags]), GOLDEN.subarray(2)])), malformed)
    assert.equal(decodeRoomInfo(Buffer.concat([GOLDEN.subarray(0, 1), Buffer.from([RoomFlag.DEVICE]), GOLDEN.subarray(2)])).flags, RoomFlag.DEVICE)
    const moreFree = Buffer.from(GOLDEN)
    moreFree.writeBigUInt64LE(2n ** 33n, 18)
    assert.throws(() => decodeRoomInfo(moreFree), malformed, 'free above total')
    for (const kind of [RoomReplica.MISSING, RoomReplica.OTHER_SOURCE])
      assert.throws(() => decodeRoomInfo(Buffer.concat([Buffer.from([kind]), GOLDEN.subarray(1)])), malformed, 'sizes told for no replica or another source')
    const huge = Buffer.from(GOLDEN)
    huge.writeBigUInt64LE(2n ** 63n, 2)
    assert.throws(() => decodeRoomInfo(huge), malformed, 'a u64 past 2^53')
  })

  it('POINTS_REQUEST op 4 ROOM carries an empty retention', () => {
    assert.deepEqual(decodePointsRequest(hex('04 0000')), {op: PointsOp.ROOM, retention: ''})
    assert.throws(() => decodePointsRequest(hex('04 0100 41')), malformed)
    assert.throws(() => decodePointsRequest(hex('05 0000')), malformed)
  })
})
