// The control socket's markBlocks request (a reprotect's owed blocks marked through a running
// tracker): its checks, and the transition marking exactly the bits sent, each durable first.
import assert from 'node:assert/strict'
import {ProtocolError, UsageError} from '../../../src/core/errors.js'
import {parseRequest} from '../../../src/core/tracker/control-protocol.js'
import {recordTransitions} from '../../../src/core/tracker/control-record.js'
import type {ChangeRecord} from '../../../src/core/change-record/change-record.js'

describe('tracker control: markBlocks', () => {
  it('takes a bitmap from a block that is a multiple of 8; anything else is refused', () => {
    assert.deepEqual(parseRequest({op: 'markBlocks', first: 16}, 2), {op: 'markBlocks', first: 16})
    const bad = (e: unknown) => e instanceof ProtocolError && e.code === 'CONTROL_BAD_REQUEST'
    assert.throws(() => parseRequest({op: 'markBlocks', first: 3}, 1), bad)
    assert.throws(() => parseRequest({op: 'markBlocks', first: 8}, 0), bad)
    assert.throws(() => parseRequest({op: 'markBlocks', first: -8}, 1), bad)
  })

  it('marks exactly the bits sent and waits for each to be durable; blocks past the disk are refused', async () => {
    const record = {blockCount: 20, header: {diskSize: 20 * 65536}} as unknown as ChangeRecord
    const marked: number[] = []
    let durable = 0
    const t = recordTransitions(record, (first, last) => {
      assert.equal(first, last)
      marked.push(first)
      return new Promise<void>((r) => setTimeout(() => (durable++, r()), 5))
    })
    const reply = await t({op: 'markBlocks', first: 8}, Buffer.from([0b10000001, 0b00001000]))
    assert.deepEqual(reply, {marked: 3})
    assert.deepEqual(marked, [8, 15, 19])
    assert.equal(durable, 3, 'answered once every mark is durable')
    await assert.rejects(t({op: 'markBlocks', first: 16}, Buffer.from([0b00010000])), (e: unknown) => e instanceof UsageError && e.code === 'CONTROL_BAD_RANGE')
  })
})
