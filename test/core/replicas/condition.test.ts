// The one state derivation of `vdrep replicas`: most serious first, and fields other commands
// add (promoted, testing) read defensively: a falsy or missing value is never "set".
import assert from 'node:assert/strict'
import type {BigIntStats} from 'node:fs'
import {replicaCondition, stateFlag} from '../../../src/core/replicas/condition.js'
import type {ReplicaState} from '../../../src/core/receiver/replica-state.js'

const state: ReplicaState = {
  replicaId: '00'.repeat(16),
  complete: true,
  resumeBlock: 0,
  diskSize: 4096,
  blockSize: 4096,
  hashAlgo: 3,
  generation: 1,
  lastSeq: 4,
  digest: '',
  size: 4096,
  mtimeNs: '10',
  ctimeNs: '20',
  updatedMs: 1,
}
const stat = (size = 4096n, mtimeNs = 10n, ctimeNs = 20n) => ({size, mtimeNs, ctimeNs}) as unknown as BigIntStats
const withField = (f: Record<string, unknown>) => ({...state, ...f}) as ReplicaState

describe('replicas: the state of a replica', () => {
  it('replicating when complete and as last committed', () => {
    assert.deepEqual(replicaCondition({state, stat: stat()}), {condition: 'replicating', reason: null})
  })
  it('most serious first: unreadable, missing, promoted, incomplete, diverged, doubt, testing', () => {
    assert.equal(replicaCondition({stateError: 'crc32 mismatch', state, stat: stat()}).condition, 'unreadable')
    assert.equal(replicaCondition({state}).condition, 'missing')
    assert.equal(replicaCondition({state: withField({promoted: true, complete: false}), stat: stat(1n)}).condition, 'promoted')
    assert.equal(replicaCondition({state: withField({complete: false, diverged: true}), stat: stat()}).condition, 'incomplete')
    assert.equal(replicaCondition({state: withField({diverged: true}), stat: stat(), testRunning: true}).condition, 'diverged')
    assert.equal(replicaCondition({state, stat: stat(4096n, 11n), testRunning: true}).condition, 'diverged')
    assert.equal(replicaCondition({state: withField({doubt: 'an apply was interrupted'}), stat: stat(), testRunning: true}).condition, 'doubt')
    assert.equal(replicaCondition({state, stat: stat(), testRunning: true}).condition, 'testing')
  })
  it('a flag another branch adds counts only when truthy', () => {
    for (const v of [undefined, null, false, 0, '']) assert.equal(stateFlag(withField({promoted: v}), 'promoted'), false)
    for (const v of [true, 1, 'yes', {at: 1}]) assert.equal(stateFlag(withField({promoted: v}), 'promoted'), true)
  })
})
