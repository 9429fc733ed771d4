// `vdrep verify` and `fullsync --dry-run` over SSH (a real sshd and `vdrep serve`), with a live
// tracker that qemu-io writes through: blocks written and not pushed are pending (exit 0), a
// block changed on the replica behind vdrep is listed (exit 5), and nothing under the
// receiver's root, nor the disk or its .psf, is written by either command.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import {json} from '../helpers/cli.js'
import {MiB, qemuIo, SshCycle} from '../helpers/cycle.js'
import {seededBytes} from '../helpers/disks.js'
import {snapshotTree} from '../helpers/untouched.js'
import type {VerifyResult} from '../../src/core/verify/verify.js'
import type {DryRunResult} from '../../src/core/verify/dry-run.js'
import type {FullsyncResult} from '../../src/core/fullsync/client.js'

const BS = 64 * 1024

describe('vdrep verify over SSH (real sshd, vdrep serve, a live tracker)', function () {
  this.timeout(120_000)
  let c: SshCycle

  before(async () => {
    c = await SshCycle.start()
  })
  after(async () => {
    await c?.stop()
  })
  afterEach(async () => {
    await c.killTrackers()
  })

  async function verifyJson(disk: string): Promise<{code: number | null; result: VerifyResult}> {
    const r = await c.vdrep(['verify', disk, '--json'])
    return {code: r.code, result: json<VerifyResult>(r)}
  }

  it("equal: exit 0; a live tracker's unpushed writes are pending, not failures; nothing written on either host", async () => {
    const d = await c.newDisk('live', 8 * MiB)
    const first = await verifyJson(d.disk)
    assert.equal(first.code, 0, JSON.stringify(first.result))
    assert.equal(first.result.verdict, 'equal')
    const t = await c.track(d)
    await qemuIo(d.uri, [`write -P 0x5a ${7 * BS} ${2 * BS}`, `write -P 0x33 ${100 * BS + 512} 4096`, 'flush'])
    const before = await snapshotTree([c.root, d.disk])
    const {code, result} = await verifyJson(d.disk)
    assert.equal(code, 0, JSON.stringify(result))
    assert.equal(result.tracked, true)
    assert.equal(result.verdict, 'pending')
    assert.deepEqual(
      result.pending.ranges.map((r) => [r.firstBlock, r.blocks, r.reason]),
      [
        [7, 2, 'recorded'],
        [100, 1, 'recorded'],
      ],
    )
    assert.equal(result.unexpected.blocks, 0)
    assert.equal(result.replicaAtLastCommit, true)
    assert.deepEqual(await snapshotTree([c.root, d.disk]), before, 'nothing written under the root, nor the disk')
    const status = json<{disks: Array<{pendingBlocks: number}>}>(await c.vdrep(['status', d.disk, '--json']))
    assert.equal(status.disks[0]!.pendingBlocks, 3, 'the tracker still holds the blocks: verify took no freeze')
    const push = await c.vdrep(['push', d.disk])
    assert.equal(push.code, 0, push.stderr)
    assert.equal((await verifyJson(d.disk)).result.verdict, 'equal')
    await c.untrack(t)
  })

  it('writes landing while the verify reads (a live VM): never reported as unexpected', async () => {
    const d = await c.newDisk('busy', 64 * MiB)
    const t = await c.track(d)
    const verifying = c.vdrep(['verify', d.disk, '--json'])
    let rounds = 0
    let done = false
    void verifying.then(() => (done = true))
    // Keep writing (spread over the disk) until the verify ends: blocks before and behind its read position.
    while (!done && rounds < 200) {
      const b = (rounds * 37) % 1024
      await qemuIo(d.uri, [`write -P ${rounds % 250} ${b * BS} ${BS}`, 'flush'])
      rounds++
    }
    const r = await verifying
    const result = json<VerifyResult>(r)
    assert.equal(r.code, 0, JSON.stringify(result.unexpected))
    assert.equal(result.unexpected.blocks, 0)
    assert.ok(rounds > 0 && result.pending.blocks > 0, `${rounds} write rounds, ${result.pending.blocks} pending`)
    if (process.env.VDREP_TEST_DEBUG) console.log(`${rounds} write rounds during the verify, ${result.pending.blocks} pending`)
    await c.untrack(t)
  })

  it('a block changed on the replica host behind vdrep: listed, exit 5, the replica untouched', async () => {
    const d = await c.newDisk('flip', 4 * MiB)
    const fh = await fs.open(d.replica, 'r+')
    await fh.write(seededBytes('flip', 300), 0, 300, 33 * BS + 1000)
    await fh.close()
    const before = await snapshotTree([c.root])
    const {code, result} = await verifyJson(d.disk)
    assert.equal(code, 5, JSON.stringify(result))
    assert.deepEqual(result.unexpected.ranges, [{firstBlock: 33, blocks: 1, offset: 33 * BS, bytes: BS, reason: 'replica-changed'}])
    assert.equal(result.replicaChangedBlocks, 1)
    assert.deepEqual(await snapshotTree([c.root]), before)
  })

  it('fullsync --dry-run over SSH, then the full sync: the same blocks and bytes', async () => {
    const d = await c.newDisk('dry', 4 * MiB)
    const fh = await fs.open(d.disk, 'r+')
    await fh.write(seededBytes('dry', 3 * BS), 0, 3 * BS, 20 * BS)
    await fh.close()
    const before = await snapshotTree([c.root])
    const dry = await c.vdrep(['fullsync', d.disk, '--dry-run', '--json'])
    assert.equal(dry.code, 0, dry.stderr)
    const r = json<DryRunResult>(dry)
    assert.deepEqual(await snapshotTree([c.root]), before)
    assert.deepEqual(
      r.differing.ranges.map((x) => [x.firstBlock, x.blocks, x.reason]),
      [[20, 3, 'send']],
    )
    const f = json<FullsyncResult>(await c.vdrep(['fullsync', d.disk, '--json']))
    assert.equal(f.blocksDiffering, r.blocksToSend)
    assert.equal(f.bytesSent, r.bytesToSend)
    assert.equal(f.blocksZeroed, r.blocksToZero)
  })
})
