import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {HashAlgo} from '../../../src/core/hash/block-hash.js'
import {kernelRangeLocksAvailable, rangeLock, rangeUnlock} from '../../../src/core/locks/index.js'
import {HelloFlag, SyncMode, type Hello} from '../../../src/core/protocol/messages.js'
import {chainMatches, enforceFence, heldOpenByAnother, replicaFence} from '../../../src/core/receiver/replica-fence.js'
import type {ReplicaState} from '../../../src/core/receiver/replica-state.js'

const ID = Buffer.alloc(16, 7)
const C1 = 'c1'.repeat(16)
const C2 = 'c2'.repeat(16)

function hello(over: Partial<Hello> = {}): Hello {
  return {
    version: 2,
    mode: SyncMode.DELTA,
    hashAlgo: HashAlgo.BLAKE3,
    blockSize: 65536,
    diskSize: 1 << 20,
    replicaId: ID,
    flags: 0,
    lastCommit: Buffer.from(C2, 'hex'),
    nextCommit: Buffer.alloc(16, 9),
    path: 'r.img',
    ...over,
  }
}

function state(over: Partial<ReplicaState> = {}): ReplicaState {
  return {
    replicaId: ID.toString('hex'),
    complete: true,
    resumeBlock: 0,
    diskSize: 1 << 20,
    blockSize: 65536,
    hashAlgo: HashAlgo.BLAKE3,
    generation: 1,
    lastSeq: 3,
    digest: '',
    size: 1 << 20,
    mtimeNs: '100',
    ctimeNs: '200',
    updatedMs: 0,
    commit: C2,
    prevCommit: C1,
    ...over,
  }
}

const sameStat = {size: BigInt(1 << 20), mtimeNs: 100n, ctimeNs: 200n}

describe('replica fence: whose replica, and did it move on', () => {
  it('a new replica (no state) is not fenced; the same source with its stat unchanged is not', () => {
    assert.equal(replicaFence(hello(), undefined, undefined, undefined), null)
    assert.equal(replicaFence(hello(), state(), undefined, sameStat), null)
  })

  it('another replica id: REPLICA_FOREIGN; a stat moved since the last commit: REPLICA_DIVERGED; an incomplete replica has no stat to compare', () => {
    assert.equal(replicaFence(hello({replicaId: Buffer.alloc(16, 1)}), state(), undefined, sameStat)?.code, 'REPLICA_FOREIGN')
    for (const st of [
      {...sameStat, size: 1n},
      {...sameStat, mtimeNs: 101n},
      {...sameStat, ctimeNs: 201n},
    ]) {
      assert.equal(replicaFence(hello(), state(), undefined, st)?.code, 'REPLICA_DIVERGED')
    }
    assert.equal(replicaFence(hello(), state({complete: false}), undefined, {...sameStat, mtimeNs: 5n}), null)
  })

  it('the flags the user chose let it through; without them the refusal names the flag', () => {
    const log: string[] = []
    const foreign = {code: 'REPLICA_FOREIGN' as const, reason: 'x'}
    const diverged = {code: 'REPLICA_DIVERGED' as const, reason: 'y'}
    assert.throws(
      () => enforceFence(hello(), foreign, (t) => log.push(t)),
      (e: Error & {code?: string}) => e.code === 'REPLICA_FOREIGN' && /--take-over-replica/.test(String((e as {hint?: string}).hint)),
    )
    assert.throws(() => enforceFence(hello({flags: HelloFlag.DISCARD_REPLICA_CHANGES}), foreign, (t) => log.push(t)), /x; nothing was written/)
    assert.throws(
      () => enforceFence(hello(), diverged, (t) => log.push(t)),
      (e: Error & {code?: string}) => e.code === 'REPLICA_DIVERGED',
    )
    assert.throws(() => enforceFence(hello({flags: HelloFlag.TAKE_OVER_REPLICA}), diverged, (t) => log.push(t)), /y; nothing was written/)
    enforceFence(hello({flags: HelloFlag.TAKE_OVER_REPLICA}), foreign, (t) => log.push(t))
    enforceFence(hello({flags: HelloFlag.DISCARD_REPLICA_CHANGES}), diverged, (t) => log.push(t))
    assert.deepEqual(log, ['taking over: x', "discarding the replica's changes: y"])
  })

  it('the commit chain: the last commit or the one before (a lost answer) matches; another does not; no chain on one side is no evidence', () => {
    assert.ok(chainMatches(hello({lastCommit: Buffer.from(C2, 'hex')}), state()))
    assert.ok(chainMatches(hello({lastCommit: Buffer.from(C1, 'hex')}), state()))
    assert.ok(!chainMatches(hello({lastCommit: Buffer.alloc(16, 0xab)}), state()))
    assert.ok(chainMatches(hello({lastCommit: Buffer.alloc(16)}), state()))
    assert.ok(chainMatches(hello({lastCommit: Buffer.alloc(16, 0xab)}), state({commit: undefined, prevCommit: undefined})))
  })

  it('an OFD lock held on the replica by another open file description: open by another program', async function () {
    if (!kernelRangeLocksAvailable()) this.skip()
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vdrep-fence-'))
    const file = path.join(dir, 'r.img')
    await fs.writeFile(file, Buffer.alloc(4096))
    const ours = await fs.open(file, 'r+')
    const other = await fs.open(file, 'r+')
    try {
      assert.equal(heldOpenByAnother(ours), false)
      assert.ok(rangeLock(other.fd, 100, 1, false), 'a shared lock on one byte, as qemu takes')
      assert.equal(heldOpenByAnother(ours), true)
      assert.equal(replicaFence(hello(), state(), ours, sameStat)?.code, 'REPLICA_DIVERGED')
      rangeUnlock(other.fd, 100, 1)
      assert.equal(heldOpenByAnother(ours), false, 'the probe let its own lock go')
      assert.ok(rangeLock(other.fd, 0, 0, true), 'and left nothing behind')
    } finally {
      await other.close()
      await ours.close()
      await fs.rm(dir, {recursive: true, force: true})
    }
  })
})
