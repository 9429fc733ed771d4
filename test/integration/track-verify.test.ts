// Doubt about the source is resolved by a local verification, not by trust and not by a refusal
// (issue 18 cases 2 and 5, and the chmod of case 10). When the record cannot vouch for the disk
// (the last tracker was killed, the disk was written while none ran, only its ctime moved, the
// .psf was restored from a copy taken while a tracker ran), `vdrep track` serves at once and
// checks every block against the block hash index behind the export; a push without a tracker
// runs the same check first. Either way the writes the bitmap does not hold reach the replica.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, vdrep} from '../helpers/cli.js'
import {filesEqual, makeMixedDisk, seededBytes, tempDir} from '../helpers/disks.js'
import {runOk} from '../core/tracker/nbd/harness.js'
import {bitmapBlocks, initDisk, MiB, startTracker, type RunningTracker} from '../core/tracker/tracker-helpers.js'
import type {PushResult} from '../../src/core/delta/push.js'
import {PsfFile} from '../../src/core/psf/psf-file.js'
import {LEASE_MS} from '../../src/core/tracker/activity-log.js'

const BS = 64 * 1024

describe('doubt resolved by a local verification (track and push)', function () {
  this.timeout(120_000)
  let dir: string
  let disk: string
  let replica: string
  let sock: string
  let tracker: RunningTracker | undefined

  beforeEach(async () => {
    dir = await tempDir('vdrep-verify-')
    disk = path.join(dir, 'vm.img')
    replica = path.join(dir, 'replica.img')
    sock = path.join(dir, 'nbd.sock')
    await makeMixedDisk(disk, 8 * MiB, 'verify', MiB)
    await initDisk(disk, replica)
    const sync = await vdrep(['fullsync', disk])
    assert.equal(sync.code, 0, sync.stderr)
  })
  afterEach(async () => {
    if (tracker && tracker.child.exitCode === null && tracker.child.signalCode === null) await tracker.stop('SIGKILL')
    tracker = undefined
    await fs.rm(dir, {recursive: true, force: true})
  })

  async function stop(): Promise<string> {
    const r = await (tracker as RunningTracker).stop('SIGTERM')
    tracker = undefined
    assert.equal(r.code, 0, r.stderr)
    return r.stderr
  }

  /** Write through the tracker's export with qemu-io (an NBD client vdrep did not write). */
  async function writeThroughExport(offset: number, pattern: number): Promise<void> {
    await runOk('qemu-io', ['-f', 'raw', `nbd+unix:///?socket=${sock}`, '-c', `write -P ${pattern} ${offset} 4096`, '-c', 'flush'])
  }

  async function writeBehind(offset: number, seed: string): Promise<void> {
    const fh = await fs.open(disk, 'r+')
    await fh.write(seededBytes(seed, 4096), 0, 4096, offset)
    await fh.close()
  }

  async function push(): Promise<PushResult> {
    const r = await vdrep(['push', disk, '--json', '--no-fallback'])
    assert.equal(r.code, 0, r.stderr)
    return json<PushResult>(r)
  }

  it('chmod on the disk: the tracker serves at once, checks, finds nothing; the next push is a delta', async () => {
    await new Promise((r) => setTimeout(r, 20))
    await fs.chmod(disk, 0o640)
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    assert.match(tracker.line, /checking the disk against the block hash index first; pushes wait for it/)
    const out = await push()
    assert.equal(out.mode, 'delta', 'the record is trusted again')
    assert.equal(out.blocks, 0)
    const stderr = await stop()
    assert.match(stderr, /its ctime changed/)
    assert.match(stderr, /checked 128 blocks in .* s: 0 changed and not yet marked/)
    assert.deepEqual(await bitmapBlocks(disk), [])
  })

  it('a write whose mtime was put back (ctime moved): the check finds and ships its block', async () => {
    const ref = path.join(dir, 'ref')
    await fs.writeFile(ref, '')
    await runOk('touch', ['-r', disk, ref])
    await new Promise((r) => setTimeout(r, 20))
    await writeBehind(3 * BS + 100, 'sneaky')
    await runOk('touch', ['-m', '-r', ref, disk]) // the mtime as it was; the ctime moves
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    const out = await push()
    assert.equal(out.blocks, 1)
    assert.ok(await filesEqual(disk, replica))
    const stderr = await stop()
    assert.match(stderr, /1 changed and not yet marked, now marked/)
  })

  it('the disk written with dd while no tracker ran (mtime moved): the tracker starts (no longer exit 4), finds the block, and the push ships it', async () => {
    await new Promise((r) => setTimeout(r, 20))
    await runOk('dd', ['if=/dev/urandom', `of=${disk}`, 'bs=4096', 'count=1', 'seek=40', 'conv=notrunc', 'status=none'])
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    await writeThroughExport(7 * BS, 0x11)
    const out = await push()
    assert.equal(out.mode, 'delta')
    assert.deepEqual(out.blocks, 2, 'the dd block and the block written through the export')
    assert.ok(await filesEqual(disk, replica))
    assert.match(await stop(), /mtime changed.*\n?.*checked 128 blocks/s)
  })

  it('issue 18 case 5: a write after a kill -9 of the tracker is found by the next tracker, and shipped', async () => {
    // No lazy flush of the bitmap before the kill: the export's block is one the check must find
    // too (on a loaded machine the flush timer sometimes fired first, and the check found 1).
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`], {VDREP_BITMAP_FLUSH_MS: '3600000'})
    await writeThroughExport(2 * BS, 0x22)
    await tracker.stop('SIGKILL')
    tracker = undefined
    await writeBehind(5 * BS, 'after the kill')
    const s = json<{disks: Array<{state: string}>}>(await vdrep(['status', disk, '--json']))
    assert.equal(s.disks[0].state, 'Error', 'a tracker died')
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    const out = await push()
    assert.equal(out.blocks, 2, 'the block written through the export before the kill, and the one written after it')
    assert.ok(await filesEqual(disk, replica), 'the write after the kill is on the replica')
    // Both blocks lie in the one hot extent of the activity log (blocks 0..63), but the host ran
    // on after the kill: the write after it may sit anywhere, so every block is checked.
    assert.match(
      await stop(),
      /the activity log cannot narrow the check: the last tracker stopped while the host kept running.*checked 128 blocks in .* s: 2 changed and not yet marked/s,
    )
  })

  it('issue 18 case 5 inside the lease: a write by another program right after a kill -9, in a cold extent, is found (the log does not narrow the check)', async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    await writeThroughExport(2 * BS, 0x23)
    await tracker.stop('SIGKILL')
    tracker = undefined
    await writeBehind(100 * BS, 'at once after the kill') // extent 1, never hot; well inside the 3 s lease
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    const out = await push()
    assert.equal(out.blocks, 2)
    assert.ok(await filesEqual(disk, replica), 'the write inside the lease window is on the replica')
    assert.match(await stop(), /checked 128 blocks/)
  })

  it('activity log after a host crash: a write acknowledged in a hot extent just before the crash is found at restart although its bit never reached the .psf; only the hot extent is checked', async () => {
    // No lazy flush of the bitmap during the test: the bit stays in the tracker's memory.
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`], {VDREP_BITMAP_FLUSH_MS: '3600000'})
    await writeThroughExport(2 * BS, 0x41) // extent 0 becomes hot (one log transaction)
    await writeThroughExport(9 * BS + 4096, 0x42) // a hot extent: no metadata I/O at all
    await tracker.stop('SIGKILL')
    tracker = undefined
    assert.deepEqual(await bitmapBlocks(disk), [], 'neither bit reached the .psf')
    const psf = await PsfFile.open(`${disk}.psf`, false)
    const log = await psf.readActivityLog()
    await psf.close()
    assert.ok(typeof log !== 'string' && log.slots.includes(0), 'extent 0 is hot in the log')
    // The host "rebooted": another boot id, a boot that began after the writes.
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`], {
      VDREP_TEST_BOOT_ID: 'a5a5a5a5-0000-4000-8000-000000000001',
      VDREP_TEST_BOOT_TIME_MS: String(Date.now() + 2000),
    })
    const out = await push()
    assert.equal(out.blocks, 2, 'both acknowledged writes are shipped')
    assert.ok(await filesEqual(disk, replica))
    assert.match(await stop(), /narrows the check to 64 unmarked blocks of its 1 hot extents.*checked 64 blocks in .* s: 2 changed and not yet marked/s)
  })

  it('activity log: the disk written by another program after the last lease ended (a cold extent): every block is checked', async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    await writeThroughExport(2 * BS, 0x51)
    await tracker.stop('SIGKILL')
    tracker = undefined
    await new Promise((r) => setTimeout(r, LEASE_MS + 200))
    await writeBehind(100 * BS, 'cold, after the lease') // extent 1, never hot
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    const out = await push()
    assert.equal(out.blocks, 2)
    assert.ok(await filesEqual(disk, replica), 'the write in the cold extent is on the replica')
    assert.match(await stop(), /the activity log cannot narrow the check: .*checked 128 blocks/s)
  })

  it('issue 18 case 2: a .psf restored from a copy taken while the tracker ran: the writes made after the copy are found and shipped', async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    await writeThroughExport(1 * BS, 0x31)
    assert.equal((await push()).blocks, 1)
    await fs.copyFile(`${disk}.psf`, path.join(dir, 'psf.copy')) // a backup of the running VM's folder
    await writeThroughExport(4 * BS, 0x32)
    await writeThroughExport(6 * BS, 0x33)
    await stop()
    await fs.copyFile(path.join(dir, 'psf.copy'), `${disk}.psf`) // restored: lastSeq matches, no clean stop, bitmap empty
    assert.deepEqual(await bitmapBlocks(disk), [])
    const out = await push()
    assert.equal(out.mode, 'delta')
    assert.equal(out.verified?.blocksNewlyMarked, 2)
    assert.equal(out.blocks, 2)
    assert.ok(await filesEqual(disk, replica), 'no write made after the copy was lost')
  })

  it('issue 18 case 5: a dd into the disk while the tracker runs is seen (fanotify), checked, and shipped by the next push', async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    assert.equal((await push()).blocks, 0)
    await runOk('dd', ['if=/dev/urandom', `of=${disk}`, 'bs=4096', 'count=1', `seek=${(9 * BS) / 4096}`, 'conv=notrunc', 'status=none'])
    const running = tracker
    for (let i = 0; i < 100 && !/another program wrote .* behind the export \(pid \d+\)/.test(running.stderr()); i++)
      await new Promise((r) => setTimeout(r, 50))
    assert.match(running.stderr(), /another program wrote .* behind the export \(pid \d+\)/)
    const out = await push()
    assert.equal(out.blocks, 1, 'the push waited for the check and shipped the block the dd wrote')
    assert.ok(await filesEqual(disk, replica))
    await stop()
  })

  it('issue 18 case 5: a dd just before a clean stop is not absorbed into its stamp: the next push checks and ships it', async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    await runOk('dd', ['if=/dev/urandom', `of=${disk}`, 'bs=4096', 'count=1', `seek=${(11 * BS) / 4096}`, 'conv=notrunc', 'status=none'])
    await stop() // at once: the watcher's last drain sees the write, or its poll asked for a check
    const s = json<{disks: Array<{state: string}>}>(await vdrep(['status', disk, '--json']))
    assert.equal(s.disks[0].state, 'Verify pending')
    const out = await push()
    assert.equal(out.verified?.blocksNewlyMarked, 1)
    assert.ok(await filesEqual(disk, replica))
  })

  it('where nothing can watch for outside writes (no addon), the clean stop leaves a check for the next push', async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`], {...process.env, VDREP_NO_NATIVE: '1'})
    await writeThroughExport(3 * BS, 0x44)
    const stderr = await stop()
    assert.match(stderr, /cannot watch .* for writes by other programs/)
    const out = await push()
    assert.match(out.verified?.reasons ?? '', /could not watch/)
    assert.equal(out.blocks, 1)
    assert.ok(await filesEqual(disk, replica))
  })
})
