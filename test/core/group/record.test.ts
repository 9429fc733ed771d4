// Tests of src/core/group/record.ts (the group record, the commit point of a group push) and
// src/core/protocol/group-messages.ts against hand-written bytes: golden both ways, every
// truncation, a trailing byte, every byte flipped (refused or a different value, never a
// crash or the same record), and hostile counts and names.
import assert from 'node:assert/strict'
import zlib from 'node:zlib'
import {ProtocolError, StateError} from '../../../src/core/errors.js'
import {decodeGroupRecord, encodeGroupRecord, type GroupRecord} from '../../../src/core/group/record.js'
import * as g from '../../../src/core/protocol/group-messages.js'
import {checkGroupName, isGroupName} from '../../../src/core/group/name.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const RID = '00112233445566778899aabbccddeeff'
const CID = 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf'

describe('group/record', () => {
  const value: GroupRecord = {
    name: 'db',
    groupSeq: 3,
    committedMs: 0x0102030405,
    members: [{path: 'a.img', seq: 7, replicaId: hex(RID), commitId: hex(CID)}],
  }
  // "VDRGRP01", version 1, reserved, 1 member, group seq 3, time, "db"; member "a.img", seq 7, ids.
  const body = hex(`5644524752503031 0100 0000 01000000 0300000000000000 0504030201000000 0200 6462
    0500 612e696d67 0700000000000000 ${RID} ${CID}`)
  const golden = Buffer.concat([body, Buffer.alloc(4)])
  golden.writeUInt32LE(zlib.crc32(body), body.length)
  const corrupt = (e: unknown) => e instanceof StateError && e.code === 'GROUP_RECORD_CORRUPT'

  it('golden bytes both ways', () => {
    assert.ok(encodeGroupRecord(value).equals(golden))
    assert.deepEqual(decodeGroupRecord(golden), value)
  })

  it('every truncation, a trailing byte and every flipped byte are refused', () => {
    for (let n = 0; n < golden.length; n++) assert.throws(() => decodeGroupRecord(golden.subarray(0, n)), corrupt)
    assert.throws(() => decodeGroupRecord(Buffer.concat([golden, Buffer.from([0])])), corrupt)
    for (let i = 0; i < golden.length; i++) {
      const bad = Buffer.from(golden)
      bad[i] ^= 0x40
      assert.throws(() => decodeGroupRecord(bad), corrupt, `byte ${i} flipped was accepted`)
    }
  })

  it('a hostile member count or name is refused even with a good checksum', () => {
    const reseal = (b: Buffer) => {
      const out = Buffer.from(b)
      out.writeUInt32LE(zlib.crc32(out.subarray(0, out.length - 4)), out.length - 4)
      return out
    }
    const many = Buffer.from(golden)
    many.writeUInt32LE(1000, 12)
    assert.throws(() => decodeGroupRecord(reseal(many)), /member count/)
    const dotted = Buffer.from(golden)
    dotted.write('..', 34, 'latin1')
    assert.throws(() => decodeGroupRecord(reseal(dotted)), /name/)
  })
})

describe('protocol/group-messages', () => {
  const malformed = (e: unknown) => e instanceof ProtocolError && e.code === 'FRAME_MALFORMED'
  const commit = {name: 'db', members: [{path: 'a.img', seq: 7, replicaId: hex(RID), commitId: hex(CID)}]}
  const commitBytes = hex(`0200 6462 0100 0500 612e696d67 0700000000000000 ${RID} ${CID}`)

  it('GROUP_COMMIT, GROUP_APPLY, JOURNALED, GROUP_COMMITTED: golden bytes both ways', () => {
    assert.ok(g.encodeGroupCommit(commit).equals(commitBytes))
    assert.deepEqual(g.decodeGroupCommit(commitBytes), commit)
    const apply = hex('0200 6462 0300000000000000')
    assert.ok(g.encodeGroupApply({name: 'db', groupSeq: 3}).equals(apply))
    assert.deepEqual(g.decodeGroupApply(apply), {name: 'db', groupSeq: 3})
    assert.ok(g.encodeJournaled(9).equals(hex('0900000000000000')))
    assert.equal(g.decodeJournaled(hex('0900000000000000')), 9)
    assert.equal(g.decodeGroupCommitted(hex('0400000000000000')), 4)
  })

  it('every truncation and a trailing byte are malformed; a bad name or member count is refused', () => {
    for (const [bytes, decode] of [
      [commitBytes, g.decodeGroupCommit],
      [hex('0200 6462 0300000000000000'), g.decodeGroupApply],
      [hex('0900000000000000'), g.decodeJournaled],
    ] as const) {
      for (let n = 0; n < bytes.length; n++) assert.throws(() => decode(bytes.subarray(0, n)), malformed)
      assert.throws(() => decode(Buffer.concat([bytes, Buffer.from([0])])), malformed)
    }
    const zero = Buffer.from(commitBytes)
    zero.writeUInt16LE(0, 4)
    assert.throws(() => g.decodeGroupCommit(zero), /member count/)
    assert.throws(() => g.decodeGroupApply(hex('0200 2e2e 0300000000000000')), /name/)
    assert.throws(() => g.decodeGroupCommit(hex('0300 612f62 0100')), /name/)
  })

  it('group names: plain words only', () => {
    for (const ok of ['db', 'vm-1', 'A.b_c']) assert.ok(isGroupName(ok))
    for (const bad of ['', '.hidden', '../x', 'a/b', 'x'.repeat(65), 'é']) assert.ok(!isGroupName(bad), bad)
    assert.throws(() => checkGroupName('a/b'), /not a group name/)
  })
})
