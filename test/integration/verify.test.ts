// `vdrep verify` and `vdrep fullsync --dry-run` on a local target, through the real binary
// (the same receiver code and wire format as over SSH: verify-ssh.test.ts). Each case breaks
// the replica or the source on purpose and checks the listing, the exit code, and that neither
// command wrote anything on either side (every file's size, mtime, ctime, inode and bytes, and
// no file created or removed: .psf, replica, its state, journal, points, lock files).
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {collect, json, startVdrep, vdrep} from '../helpers/cli.js'
import {markChanged} from '../helpers/change-record.js'
import {filesEqual, makeMixedDisk, seededBytes, tempDir} from '../helpers/disks.js'
import {snapshotTree} from '../helpers/untouched.js'
import {acquireDiskLock} from '../../src/core/locks/index.js'
import type {VerifyResult} from '../../src/core/verify/verify.js'
import type {DryRunResult} from '../../src/core/verify/dry-run.js'
import type {FullsyncResult} from '../../src/core/fullsync/client.js'

const MiB = 1 << 20
const BS = 64 * 1024

async function writeBlock(file: string, block: number, seed: string, len = BS): Promise<void> {
  const fh = await fs.open(file, 'r+')
  try {
    await fh.write(seededBytes(seed, len), 0, len, block * BS)
  } finally {
    await fh.close()
  }
}

describe('vdrep verify and fullsync --dry-run (local target): nothing written, differences sorted', function () {
  this.timeout(120_000)
  let dir: string
  let disk: string
  let replicaDir: string
  let replica: string

  beforeEach(async () => {
    dir = await tempDir('vdrep-verify-')
    disk = path.join(dir, 'vm', 'web.img')
    replicaDir = path.join(dir, 'replicas')
    replica = path.join(replicaDir, 'web.img')
    await fs.mkdir(path.dirname(disk))
    await fs.mkdir(replicaDir)
    await makeMixedDisk(disk, 8 * MiB, 'verify')
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
    const f = await vdrep(['fullsync', disk])
    assert.equal(f.code, 0, f.stderr)
    await vdrep(['push', disk]) // one commit, so the replica has a sequence and restore-point files
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  /** Both sides: the disk's folder (disk, .psf, disk lock) and the replica's (replica, state, points, replica lock). */
  const tree = () => snapshotTree([path.dirname(disk), replicaDir], [`${disk}.vdrep.lock`])

  async function verifyJson(): Promise<{code: number | null; result: VerifyResult & {error?: string}}> {
    const r = await vdrep(['verify', disk, '--json'])
    return {code: r.code, result: json<VerifyResult & {error?: string}>(r)}
  }

  it('an equal replica: exit 0, "equal", and nothing written on either side', async () => {
    const before = await tree()
    const {code, result} = await verifyJson()
    assert.equal(code, 0, JSON.stringify(result))
    assert.equal(result.verdict, 'equal')
    assert.equal(result.equal, true)
    assert.equal(result.replicaAtLastCommit, true)
    assert.equal(result.replicaChangedBlocks, 0)
    assert.equal(result.blocksCompared, 128)
    const human = await vdrep(['verify', disk])
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /: equal\n/)
    assert.deepEqual(await tree(), before)
    assert.ok(await filesEqual(disk, replica))
  })

  it('blocks flipped on the replica behind vdrep: listed exactly (offsets), exit 5, counted as changed since the last commit, nothing written', async () => {
    await writeBlock(replica, 17, 'flip-a', 100) // part of one block
    await writeBlock(replica, 40, 'flip-b')
    await writeBlock(replica, 41, 'flip-c')
    const before = await tree()
    const {code, result} = await verifyJson()
    assert.equal(code, 5, JSON.stringify(result))
    assert.equal(result.verdict, 'failed')
    assert.equal(result.error, 'VERIFY_FAILED')
    assert.deepEqual(result.unexpected.ranges, [
      {firstBlock: 17, blocks: 1, offset: 17 * BS, bytes: BS, reason: 'replica-changed'},
      {firstBlock: 40, blocks: 2, offset: 40 * BS, bytes: 2 * BS, reason: 'replica-changed'},
    ])
    assert.equal(result.unexpected.blocks, 3)
    assert.equal(result.pending.blocks, 0)
    assert.equal(result.replicaChangedBlocks, 3)
    assert.equal(result.replicaAtLastCommit, false)
    const human = await vdrep(['verify', disk])
    assert.equal(human.code, 5)
    assert.match(human.stdout, /unexpected replica-changed: bytes 1114112-1179647 \(65536 bytes, block 17\)/)
    assert.match(human.stdout, /unexpected replica-changed: bytes 2621440-2752511 \(131072 bytes, blocks 40-41\)/)
    assert.match(human.stdout, /3 block\(s\) differ from the last committed point/)
    assert.match(human.stderr, /VERIFY_FAILED|differs from .* in 3 block/)
    assert.deepEqual(await tree(), before, 'a failing verify writes nothing either')
    // The push that the replica's divergence refuses points at verify for the count.
    const push = await vdrep(['push', disk])
    assert.equal(push.code, 11, push.stderr)
    assert.match(push.stderr, /vdrep verify/)
  })

  it('blocks written and recorded but not pushed: pending, not a failure (exit 0); after the push, equal', async () => {
    await writeBlock(disk, 3, 'dirty-1')
    await writeBlock(disk, 4, 'dirty-2')
    await writeBlock(disk, 90, 'dirty-3')
    await markChanged(disk, [3, 4, 90]) // as `vdrep track --scan` leaves the record
    const before = await tree()
    const {code, result} = await verifyJson()
    assert.equal(code, 0, JSON.stringify(result))
    assert.equal(result.verdict, 'pending')
    assert.deepEqual(result.pending.ranges, [
      {firstBlock: 3, blocks: 2, offset: 3 * BS, bytes: 2 * BS, reason: 'recorded'},
      {firstBlock: 90, blocks: 1, offset: 90 * BS, bytes: BS, reason: 'recorded'},
    ])
    assert.equal(result.unexpected.blocks, 0)
    assert.equal(result.replicaAtLastCommit, true, 'the replica itself is still at its last commit')
    assert.deepEqual(await tree(), before)
    assert.equal((await vdrep(['push', disk])).code, 0)
    const again = await verifyJson()
    assert.equal(again.code, 0)
    assert.equal(again.result.verdict, 'equal')
  })

  it('a disk written while no tracker ran (not marked): pending until the next push checks it, not a failure', async () => {
    await writeBlock(disk, 60, 'unmarked')
    const {code, result} = await verifyJson()
    assert.equal(code, 0, JSON.stringify(result))
    assert.deepEqual(result.pending.ranges, [{firstBlock: 60, blocks: 1, offset: 60 * BS, bytes: BS, reason: 'unverified'}])
    const push = await vdrep(['push', disk, '--json'])
    assert.equal(push.code, 0, push.stderr)
    assert.equal((await verifyJson()).result.verdict, 'equal')
  })

  it('pending on the source and changed on the replica: only the replica block fails', async () => {
    await writeBlock(disk, 5, 'dirty')
    await markChanged(disk, [5])
    await writeBlock(replica, 70, 'behind-our-back')
    const {code, result} = await verifyJson()
    assert.equal(code, 5)
    assert.deepEqual(
      result.unexpected.ranges.map((r) => [r.firstBlock, r.reason]),
      [[70, 'replica-changed']],
    )
    assert.deepEqual(
      result.pending.ranges.map((r) => [r.firstBlock, r.reason]),
      [[5, 'recorded']],
    )
    assert.equal(result.replicaChangedBlocks, 1)
  })

  it('fullsync --dry-run says what the full sync then sends, exactly, and writes nothing', async () => {
    await writeBlock(disk, 9, 'changed-1')
    await writeBlock(disk, 10, 'changed-2')
    await writeBlock(disk, 127, 'changed-3')
    // Blocks 0-1 (random data) become zeros: a zero run, no data.
    const fh = await fs.open(disk, 'r+')
    await fh.write(Buffer.alloc(2 * BS), 0, 2 * BS, 0)
    await fh.close()
    const before = await tree()
    const dry = await vdrep(['fullsync', disk, '--dry-run', '--json'])
    assert.equal(dry.code, 0, dry.stderr)
    const d = json<DryRunResult>(dry)
    assert.deepEqual(await tree(), before, 'the dry run wrote nothing')
    assert.equal(d.blocksToSend, 3)
    assert.equal(d.blocksToZero, 2)
    assert.deepEqual(
      d.differing.ranges.map((r) => [r.firstBlock, r.blocks, r.reason]),
      [
        [0, 2, 'zero'],
        [9, 2, 'send'],
        [127, 1, 'send'],
      ],
    )
    const real = await vdrep(['fullsync', disk, '--json'])
    assert.equal(real.code, 0, real.stderr)
    const f = json<FullsyncResult>(real)
    assert.equal(f.blocksDiffering, d.blocksToSend)
    assert.equal(f.bytesSent, d.bytesToSend)
    assert.equal(f.blocksZeroed, d.blocksToZero)
    assert.ok(await filesEqual(disk, replica))
    const after = json<DryRunResult>(await vdrep(['fullsync', disk, '--dry-run', '--json']))
    assert.equal(after.blocksToSend + after.blocksToZero, 0)
  })

  it('fullsync --dry-run to a missing replica: no file made; the first full sync sends what it said', async () => {
    const fresh = path.join(dir, 'fresh')
    await fs.mkdir(fresh)
    const other = path.join(dir, 'vm', 'db.img')
    await makeMixedDisk(other, 3 * MiB + 4096, 'dry-fresh')
    assert.equal((await vdrep(['init', other, '--to', path.join(fresh, 'db.img')])).code, 0)
    const dry = await vdrep(['fullsync', other, '--dry-run', '--json'])
    assert.equal(dry.code, 0, dry.stderr)
    const d = json<DryRunResult>(dry)
    assert.equal(d.replicaState, 'missing')
    assert.deepEqual(await fs.readdir(fresh), [], 'no replica, state or lock file was made')
    const f = json<FullsyncResult>(await vdrep(['fullsync', other, '--json']))
    assert.equal(f.blocksDiffering, d.blocksToSend)
    assert.equal(f.bytesSent, d.bytesToSend)
    assert.equal(f.blocksZeroed, d.blocksToZero)
  })

  it('the worker-thread carrier of a local target gives the same answer', async () => {
    await writeBlock(replica, 12, 'worker-flip')
    const r = await vdrep(['verify', disk, '--json'], {env: {VDREP_LOCAL_RECEIVER: 'worker'}})
    assert.equal(r.code, 5, r.stderr)
    assert.deepEqual(
      json<VerifyResult>(r).unexpected.ranges.map((x) => [x.firstBlock, x.reason]),
      [[12, 'replica-changed']],
    )
  })

  it('kill -9 of a verify mid-run: nothing written, the locks go with it, the next push runs', async () => {
    const big = path.join(path.dirname(disk), 'big.img')
    await makeMixedDisk(big, 192 * MiB, 'verify-kill')
    assert.equal((await vdrep(['init', big, '--to', path.join(replicaDir, 'big.img')])).code, 0)
    assert.equal((await vdrep(['fullsync', big])).code, 0)
    const lockNotes = [`${disk}.vdrep.lock`, `${big}.vdrep.lock`]
    const before = await snapshotTree([path.dirname(disk), replicaDir], lockNotes)
    const child = startVdrep(['verify', big])
    const ended = collect(child)
    // Killed once it holds the disk lock (its note names it), i.e. while it looks.
    for (let i = 0; i < 500 && !(await fs.readFile(`${big}.vdrep.lock`, 'utf8')).includes('verify'); i++) await new Promise((r) => setTimeout(r, 5))
    child.kill('SIGKILL')
    assert.equal((await ended).signal, 'SIGKILL', 'killed while it ran')
    assert.deepEqual(await snapshotTree([path.dirname(disk), replicaDir], lockNotes), before)
    const fh = await fs.open(big, 'r+')
    await fh.write(seededBytes('after-kill', BS), 0, BS, 5 * BS)
    await fh.close()
    const push = await vdrep(['push', big])
    assert.equal(push.code, 0, push.stderr)
    assert.ok(await filesEqual(big, path.join(replicaDir, 'big.img')))
    assert.equal((await vdrep(['verify', big])).code, 0)
  })

  it('takes the disk lock: while a push (or any holder) has it, verify exits 3 and reads nothing', async () => {
    const lock = await acquireDiskLock(disk, 'push')
    try {
      const r = await vdrep(['verify', disk])
      assert.equal(r.code, 3, r.stderr)
      assert.match(r.stderr, /push/)
    } finally {
      await lock.release()
    }
    assert.equal((await vdrep(['verify', disk])).code, 0)
  })

  it('verify of a missing replica fails (exit 5) and makes nothing', async () => {
    await fs.rm(replicaDir, {recursive: true})
    await fs.mkdir(replicaDir)
    const {code, result} = await verifyJson()
    assert.equal(code, 5)
    assert.equal(result.replicaState, 'missing')
    assert.deepEqual(await fs.readdir(replicaDir), [])
  })
})
