// The record of a test in the replica's state: written under the replica lock (waiting while a
// receiver holds it, giving up after its wait without writing), kept to the newest
// MAX_TEST_RECORDS, and a hostile `tests` field in a state file is refused as corrupt.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {StateError} from '../../../src/core/errors.js'
import {acquireReplica} from '../../../src/core/locks/index.js'
import {
  decodeReplicaState,
  encodeReplicaState,
  MAX_TEST_RECORDS,
  readReplicaState,
  writeReplicaState,
  type ReplicaState,
} from '../../../src/core/receiver/replica-state.js'
import {describeTest, lastTestOf, recordTest} from '../../../src/core/test-view/record.js'
import {tempDir} from '../../helpers/disks.js'

const state: ReplicaState = {
  replicaId: 'ab'.repeat(16),
  complete: true,
  resumeBlock: 0,
  diskSize: 1 << 20,
  blockSize: 65536,
  hashAlgo: 1,
  generation: 1,
  lastSeq: 3,
  digest: '',
  size: 1 << 20,
  mtimeNs: '1',
  ctimeNs: '1',
  updatedMs: 1000,
}

describe('test view: the record of a test in the replica state', () => {
  let dir: string
  let replica: string
  beforeEach(async () => {
    dir = await tempDir('vdrep-test-record-')
    replica = path.join(dir, 'r.img')
    await fs.writeFile(replica, '')
    await writeReplicaState(replica, state)
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('waits for the replica lock, then records; keeps the newest records only', async () => {
    const release = await acquireReplica(replica, 'a test')
    setTimeout(release, 300)
    const t0 = Date.now()
    assert.equal(await recordTest(replica, {seq: 3, pointMs: 5, startedMs: 10, endedMs: 70_000}, 10_000), true)
    assert.ok(Date.now() - t0 >= 250, 'it waited for the lock')
    for (let i = 0; i < MAX_TEST_RECORDS + 3; i++) await recordTest(replica, {seq: 2, pointMs: 4, startedMs: i, endedMs: i + 1})
    const {state: after} = await readReplicaState(replica)
    assert.equal(after?.tests?.length, MAX_TEST_RECORDS)
    assert.equal(lastTestOf(after?.tests, 2, 4)?.startedMs, MAX_TEST_RECORDS + 2)
    assert.equal(lastTestOf(after?.tests, 2, 999), undefined, 'the same sequence of another chain is another point')
    assert.equal(after?.lastSeq, 3, 'nothing else of the state changed')
    assert.match(describeTest({seq: 3, pointMs: 5, startedMs: 10, endedMs: 70_010}), /^1970-01-01T00:01:10\.010Z for 1m10s$/)
  })

  it('gives up without writing when the lock stays taken', async () => {
    const release = await acquireReplica(replica, 'a test')
    try {
      assert.equal(await recordTest(replica, {seq: 3, pointMs: 5, startedMs: 10, endedMs: 20}, 200), false)
    } finally {
      release()
    }
    assert.equal((await readReplicaState(replica)).state?.tests, undefined)
  })

  it('refuses a hostile tests field', () => {
    const bad: unknown[] = [
      'x',
      [{seq: -1, pointMs: 0, startedMs: 0, endedMs: 0}],
      [{seq: 1, pointMs: 0, startedMs: 0}],
      [{seq: 1, pointMs: 0, startedMs: 0, endedMs: 0, extra: 1}],
      Array.from({length: MAX_TEST_RECORDS + 1}, () => ({seq: 1, pointMs: 0, startedMs: 0, endedMs: 0})),
    ]
    for (const tests of bad) {
      const b = encodeReplicaState({...state, tests} as unknown as ReplicaState)
      assert.throws(
        () => decodeReplicaState(b),
        (e: unknown) => e instanceof StateError && e.code === 'REPLICA_STATE_CORRUPT',
        JSON.stringify(tests),
      )
    }
  })
})
