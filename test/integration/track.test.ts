// `vdrep track` through the real binary, written to by NBD clients vdrep did not write
// (qemu-io, qemu-img, nbdcopy, nbdinfo); the bitmap is read back from the .psf after a
// clean stop (SIGTERM) and compared with exactly what the clients touched.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {Region} from '../../src/core/psf/layout.js'
import {SLOT_SIZE} from '../../src/core/psf/layout.js'
import {TrackerControlClient} from '../../src/core/tracker/control-client.js'
import {HeaderFlag} from '../../src/core/psf/header.js'
import {PsfFile, psfPathFor} from '../../src/core/psf/psf-file.js'
import {fullsync} from '../../src/core/fullsync/client.js'
import {json, vdrep} from '../helpers/cli.js'
import {makeMixedDisk, seededBytes, tempDir} from '../helpers/disks.js'
import {run, runOk} from '../core/tracker/nbd/harness.js'
import {
  bitmapBlocks,
  blocksOf,
  checkEnded,
  changedBlocks,
  initDisk,
  MiB,
  sorted,
  startTracker,
  trackerRefuses,
  type RunningTracker,
} from '../core/tracker/tracker-helpers.js'
import {ensureUser} from '../helpers/users.js'

const BS = 64 * 1024
const SIZE = 16 * MiB

describe('vdrep track (CLI, real NBD clients)', function () {
  this.timeout(120_000)
  let dir: string
  let disk: string
  let replica: string
  let sock: string
  let uri: string
  let tracker: RunningTracker | undefined

  beforeEach(async () => {
    dir = await tempDir('vdrep-track-')
    disk = path.join(dir, 'vm.img')
    replica = path.join(dir, 'replica', 'vm.img')
    sock = path.join(dir, 'nbd.sock')
    uri = `nbd+unix:///vm.img?socket=${sock}`
    await fs.mkdir(path.dirname(replica))
    await makeMixedDisk(disk, SIZE, 'track', MiB)
    await initDisk(disk, replica)
  })

  afterEach(async () => {
    if (tracker && tracker.child.exitCode === null && tracker.child.signalCode === null) await tracker.stop('SIGKILL')
    tracker = undefined
    await fs.rm(dir, {recursive: true, force: true})
  })

  async function stopCleanly(): Promise<string> {
    const r = await (tracker as RunningTracker).stop('SIGTERM')
    assert.equal(r.code, 0, r.stderr)
    const lines = r.stdout.trim().split('\n')
    assert.equal(lines.length, 2, r.stdout)
    assert.match(lines[1], /^stopped tracking .* cleanly/)
    tracker = undefined
    return r.stderr
  }

  it('qemu-io at odd offsets, write -z, discard, aio_write: the disk holds exactly what was written, the bitmap exactly the touched blocks', async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    assert.match(tracker.line, /^tracking .*vm\.img: NBD export "vm\.img" on unix:.*nbd\.sock; 0 blocks pending/)
    const model = await fs.readFile(disk)
    const touched: number[] = []
    const steps: Array<[string, number, number, number | null]> = [
      ['write -P 0xab 1000 3000', 1000, 3000, 0xab],
      ['write -P 0x11 65535 2', 65535, 2, 0x11], // straddles blocks 0 and 1
      ['write -P 0x22 200001 70001', 200001, 70001, 0x22],
      ['write -z 1048577 99999', 1048577, 99999, 0],
      ['discard 4194304 131072', 4194304, 131072, 0],
      ['write -z -u 6291456 65536', 6291456, 65536, 0],
      ['aio_write -P 0x44 8388608 65536', 8388608, 65536, 0x44],
      ['aio_write -P 0x55 9437187 5', 9437187, 5, 0x55],
      ['write -f -P 0x66 16777215 1', SIZE - 1, 1, 0x66], // FUA, last byte of the disk
    ]
    const args = ['-f', 'raw', uri]
    for (const [cmd, off, len, fill] of steps) {
      args.push('-c', cmd)
      if (fill !== null) model.fill(fill, off, off + len)
      touched.push(...blocksOf(off, len, BS))
    }
    args.push('-c', 'aio_flush', '-c', 'read -P 0xab 1000 3000', '-c', 'read -P 0 1048577 99999', '-c', 'read -P 0x55 9437187 5', '-c', 'flush')
    const out = await runOk('qemu-io', args)
    assert.doesNotMatch(out, /fail|error|mismatch/i, out)
    await stopCleanly()
    const bytes = await fs.readFile(disk)
    assert.equal(bytes.length, SIZE)
    const at = bytes.findIndex((b, i) => b !== model[i])
    assert.equal(at, -1, `the disk differs from what was written at offset ${at}`)
    assert.deepEqual(await bitmapBlocks(disk), sorted(touched))
  })

  it('over TCP on port 0, with FUA; reads and block status mark nothing', async () => {
    tracker = await startTracker(disk, ['--nbd', '127.0.0.1:0'])
    const port = Number(/on 127\.0\.0\.1:(\d+)/.exec(tracker.line)?.[1])
    assert.ok(port > 0, tracker.line)
    const tcp = `nbd://127.0.0.1:${port}/vm.img`
    await runOk('qemu-io', ['-f', 'raw', tcp, '-c', 'read 0 1048576', '-c', 'write -f -P 0x77 3145729 131072'])
    await runOk('nbdinfo', ['--map', tcp])
    await stopCleanly()
    assert.deepEqual(await bitmapBlocks(disk), blocksOf(3145729, 131072, BS))
  })

  it('qemu-img convert -n, nbdcopy both ways, nbdinfo --map and --list', async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    const before = await fs.readFile(disk)
    const other = path.join(dir, 'other.img')
    const img = Buffer.alloc(SIZE)
    seededBytes('other', 3 * MiB).copy(img, 0)
    seededBytes('other2', MiB).copy(img, 9 * MiB + 4096)
    await fs.writeFile(other, img)
    await runOk('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', other, uri])
    assert.ok((await fs.readFile(disk)).equals(img), 'qemu-img convert did not land')

    const src = path.join(dir, 'src.img')
    const back = path.join(dir, 'back.img')
    const rnd = seededBytes('nbdcopy', SIZE)
    rnd.fill(0, 4 * MiB, 12 * MiB)
    await fs.writeFile(src, rnd)
    await runOk('nbdcopy', [src, uri])
    await runOk('nbdcopy', [uri, back])
    assert.ok((await fs.readFile(back)).equals(rnd), 'nbdcopy out of the export differs')

    const map = await runOk('nbdinfo', ['--map', uri])
    assert.match(map, /\bdata\b/, map)
    const list = await runOk('nbdinfo', ['--list', `nbd+unix:///?socket=${sock}`])
    assert.match(list, /export="vm\.img"/, list)
    await stopCleanly()
    assert.ok((await fs.readFile(disk)).equals(rnd))
    const marked = new Set(await bitmapBlocks(disk))
    const changed = sorted([...changedBlocks(before, img, BS), ...changedBlocks(img, rnd, BS)])
    for (const b of changed) assert.ok(marked.has(b), `block ${b} changed but is not marked`)
  })

  // Before the first full sync (no block hash index) the tracker makes every new bit durable
  // before its data, as without a log; once synced, writes go through the activity log and the
  // restart checks the unmarked blocks of its hot extents (waited for here, before the stop).
  for (const synced of [false, true]) {
    const how = synced ? 'synced: through the activity log' : 'never synced: bits durable first'
    const sync = async () => {
      if (!synced) return
      const r = await vdrep(['fullsync', disk])
      assert.equal(r.code, 0, r.stderr)
    }
    /** Asked of the first tracker before its kill: did its writes go through the log? */
    const usedLog = async (client: TrackerControlClient) => {
      const st = await client.status()
      await client.close().catch(() => {})
      if (synced) assert.ok((st.alTransactions ?? 0) > 0, 'the log was used')
      else assert.equal(st.alTransactions, 0, 'no log without an index')
    }
    /** The restarted tracker's check behind the export has ended. */
    const checked = () => checkEnded(disk)

    it(`kill -9 in the middle of a stream of qemu-io writes (${how}): every acknowledged write is marked after restart, no full sync demanded`, async () => {
      await sync()
      tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
      const before = await fs.readFile(disk)
      const N = 4000
      const lines: string[] = []
      for (let i = 0; i < N; i++) lines.push(`write -P ${(i % 250) + 1} ${((i * 37) % 256) * BS + (i % 3) * 1000} 4096`)
      const q = spawn('qemu-io', ['-f', 'raw', uri], {stdio: ['pipe', 'pipe', 'pipe']})
      let qout = ''
      q.stdout.on('data', (d: Buffer) => (qout += d.toString()))
      q.stderr.on('data', () => {})
      const qdone = new Promise<void>((resolve) => q.on('close', () => resolve()))
      q.stdin.on('error', () => {})
      q.stdin.end(lines.join('\n') + '\nquit\n')
      // Kill once a good share of the writes went through, read from the tracker itself. Waited
      // for by a deadline, not a count of polls: 400 polls ended before the 300th write on a
      // loaded machine (two test processes beside others' benchmarks), and the kill came early.
      const client = await TrackerControlClient.connect(disk)
      const until = Date.now() + 60_000
      while ((await client.status()).writes < 300 && Date.now() < until && q.exitCode === null) await new Promise((r) => setTimeout(r, 5))
      await usedLog(client)
      tracker.child.kill('SIGKILL')
      await tracker.exited
      tracker = undefined
      await qdone
      const acked = [...qout.matchAll(/wrote 4096\/4096 bytes at offset (\d+)/g)].map((m) => Number(m[1]))
      assert.ok(acked.length >= 300, `only ${acked.length} writes were acknowledged`)
      assert.ok(acked.length < N, 'every write finished before the kill: the test proves nothing')

      tracker = await startTracker(disk, ['--nbd', `unix:${sock}`]) // no full sync demanded
      const after = await fs.readFile(disk)
      await checked()
      await stopCleanly()
      const marked = new Set(await bitmapBlocks(disk))
      for (const off of acked) {
        assert.ok(marked.has(Math.floor(off / BS)), `acknowledged write at ${off} is not marked`)
      }
      // Stronger: no block changed on disk without its bit, acknowledged or not.
      for (const b of changedBlocks(before, after, BS)) assert.ok(marked.has(b), `block ${b} changed on disk but is not marked`)
    })

    it(`kill -9 during an nbdcopy of random data (${how}): every block that changed on disk is marked`, async () => {
      await sync()
      const src = path.join(dir, 'rand.img')
      await runOk('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', `count=${SIZE / MiB}`, 'status=none'])
      tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
      const before = await fs.readFile(disk)
      const copy = run('nbdcopy', ['--request-size=65536', '--connections=1', src, uri])
      const client = await TrackerControlClient.connect(disk)
      for (let i = 0; i < 400; i++) {
        if ((await client.status()).writes >= 20) break
        await new Promise((r) => setTimeout(r, 2))
      }
      await usedLog(client)
      tracker.child.kill('SIGKILL')
      await tracker.exited
      tracker = undefined
      await copy
      const after = await fs.readFile(disk)
      const changed = changedBlocks(before, after, BS)
      assert.ok(changed.length > 0, 'nothing was written before the kill')
      tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
      await checked()
      await stopCleanly()
      const marked = new Set(await bitmapBlocks(disk))
      for (const b of changed) assert.ok(marked.has(b), `block ${b} changed on disk but is not marked`)
    })
  }

  it('a second tracker of the same disk is refused with exit 3, naming the running one', async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    const r = await trackerRefuses(disk, ['--nbd', `unix:${path.join(dir, 'other.sock')}`])
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, new RegExp(`already running .*pid ${tracker.child.pid}`), r.stderr)
    const scan = await vdrep(['track', disk, '--scan'])
    assert.equal(scan.code, 3, scan.stderr)
    await stopCleanly()
  })

  it("while a tracker runs, init --force is refused (3) and the .psf stays the tracker's", async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    const before = await fs.readFile(`${disk}.psf`)
    const ino = (await fs.stat(`${disk}.psf`)).ino
    const r = await vdrep(['init', disk, '--to', replica, '--force'])
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, /already running/)
    assert.equal((await fs.stat(`${disk}.psf`)).ino, ino, 'the .psf was replaced under the tracker')
    assert.ok((await fs.readFile(`${disk}.psf`)).equals(before))
    await stopCleanly()
    assert.equal((await vdrep(['init', disk, '--to', replica, '--force'])).code, 0, 'once the tracker is gone, --force replaces it')
  })

  it('a push refuses (3) while a tracker holds the disk but its control socket is gone; nothing in the .psf changes', async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5e 0 64k', uri])
    await fs.rm(`${disk}.vdrep.sock`) // as a temp cleaner would
    // The tracker's own lazy flush writes the bit within a second or so: wait for it, or it
    // lands while the pushes run and reads as their edit.
    for (let i = 0; i < 100 && !(await bitmapBlocks(disk)).includes(0); i++) await new Promise((r) => setTimeout(r, 50))
    const psfBefore = await fs.readFile(`${disk}.psf`)
    for (const cmd of ['push', 'fullsync']) {
      const r = await vdrep([cmd, disk])
      assert.equal(r.code, 3, `${cmd}: ${r.stdout}${r.stderr}`)
      assert.match(r.stderr, /nothing answers on its control socket/)
    }
    assert.ok((await fs.readFile(`${disk}.psf`)).equals(psfBefore), 'the .psf was edited under the tracker')
    await tracker.stop('SIGTERM')
    tracker = undefined
  })

  it('a flipped byte in both header slots is a clear refusal: a full sync is needed (exit 4)', async () => {
    const fh = await fs.open(`${disk}.psf`, 'r+')
    for (const at of [30, SLOT_SIZE + 30]) {
      const b = Buffer.alloc(1)
      await fh.read(b, 0, 1, at)
      b[0] ^= 0x40
      await fh.write(b, 0, 1, at)
    }
    await fh.close()
    const r = await trackerRefuses(disk, ['--nbd', `unix:${sock}`])
    assert.equal(r.code, 4, r.stderr)
    assert.match(r.stderr, /corrupt.*full sync is needed/)
    assert.match(r.stderr, /hint: run `vdrep init --force/)
    const s = json<{disks: Array<{state: string}>}>(await vdrep(['status', disk, '--json']))
    assert.equal(s.disks[0].state, 'Full sync needed')
  })

  it('a missing .psf, or a disk of another size, is refused (exit 4)', async () => {
    await fs.appendFile(disk, Buffer.alloc(BS))
    const grown = await trackerRefuses(disk, ['--nbd', `unix:${sock}`])
    assert.equal(grown.code, 4, grown.stderr)
    assert.match(grown.stderr, /made for 16777216/)
    await fs.rm(`${disk}.psf`)
    const missing = await trackerRefuses(disk, ['--nbd', `unix:${sock}`])
    assert.equal(missing.code, 4, missing.stderr)
    assert.match(missing.stderr, /no state file.*full sync is needed/)
  })

  it("a flipped byte in a bitmap page marks that page's blocks dirty and warns; other pages keep their bits", async () => {
    // 4 KiB blocks on a sparse 256 MiB disk: 65536 blocks, three bitmap pages of 32672.
    const big = path.join(dir, 'big.img')
    await fs.writeFile(big, '')
    await fs.truncate(big, 256 * MiB)
    await initDisk(big, path.join(dir, 'replica', 'big.img'), '--block-size', '4k')
    const bigUri = `nbd+unix:///big.img?socket=${sock}`
    tracker = await startTracker(big, ['--nbd', `unix:${sock}`])
    await runOk('qemu-io', ['-f', 'raw', bigUri, '-c', 'write -P 1 4096 4096', '-c', `write -P 2 ${65400 * 4096} 4096`])
    await stopCleanly()
    assert.deepEqual(await bitmapBlocks(big), [1, 65400])
    const pageOffset = 2 * 4096 + 1 * 4096 // after the two slots, page 1 of the active region
    const fh = await fs.open(`${big}.psf`, 'r+')
    await fh.write(Buffer.from([0xff]), 0, 1, pageOffset + 100)
    await fh.close()
    tracker = await startTracker(big, ['--nbd', `unix:${sock}`])
    const stderr = await stopCleanly()
    assert.match(stderr, /page 1 of the active bitmap .* failed its checksum: blocks 32672\.\.65343 are marked changed/)
    const expected = [1, ...Array.from({length: 32672}, (_, i) => 32672 + i), 65400]
    assert.deepEqual(await bitmapBlocks(big), expected)
  })

  it('the disk written with dd while no tracker ran is detected after a clean stop: status says a check is pending; --scan (or the next tracker) finds the block', async () => {
    // --scan needs the block index of a proved sync.
    const noIndex = await vdrep(['track', disk, '--scan'])
    assert.equal(noIndex.code, 4, noIndex.stderr)
    assert.match(noIndex.stderr, /full sync is needed/)
    const sync = await vdrep(['fullsync', disk])
    assert.equal(sync.code, 0, sync.stderr)
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    await stopCleanly()
    await runOk('dd', ['if=/dev/urandom', `of=${disk}`, 'bs=4096', 'count=1', 'seek=100', 'conv=notrunc', 'status=none'])
    const s = json<{disks: Array<{state: string; reason: string}>}>(await vdrep(['status', disk, '--json']))
    assert.equal(s.disks[0].state, 'Verify pending')
    assert.match(s.disks[0].reason, /written while no tracker ran.*checks every block against the block hash index/)
    const scan = await vdrep(['track', disk, '--scan'])
    assert.equal(scan.code, 0, scan.stderr)
    assert.match(scan.stdout, /1 changed since the last sync/)
    assert.deepEqual(await bitmapBlocks(disk), [Math.floor((100 * 4096) / BS)])
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    await stopCleanly()
  })

  it("a tracker that stops cleanly during a full sync keeps its clean flag (the sync's last header write does not undo it)", async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    // A replica that differs in two data blocks of the second half: the sync checksums chunks
    // through a mapping, then reads the blocks that differ (beforeFill runs there).
    const source = await fs.readFile(disk)
    const differing = [...Array(SIZE / BS).keys()].filter((b) => b >= SIZE / BS / 2 && source.subarray(b * BS, (b + 1) * BS).some((x) => x !== 0)).slice(0, 2)
    assert.equal(differing.length, 2)
    const fh = await fs.open(replica, 'r+')
    for (const b of differing) await fh.write(Buffer.alloc(BS, 0x5a), 0, BS, b * BS)
    await fh.close()
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    const running = tracker
    let stopped: Awaited<ReturnType<RunningTracker['stop']>> | undefined
    // The replica was written by hand here (to make blocks differ): the user's flag says to overwrite it.
    const outcome = await fullsync(disk, {
      discardReplicaChanges: true,
      beforeFill: async () => {
        stopped ??= await running.stop('SIGTERM') // it records its stamp and sets CLEAN_SHUTDOWN
      },
    }).then(
      (r) => r,
      (err: Error) => err,
    )
    if (stopped) tracker = undefined // else afterEach kills it
    assert.ok(stopped, `the sync never read a differing block of a mapped chunk: ${String(outcome)}`)
    assert.equal(stopped.code, 0, stopped.stderr)
    const psf = await PsfFile.open(psfPathFor(disk), false)
    const flags = psf.header.flags
    await psf.close()
    assert.ok(flags & HeaderFlag.CLEAN_SHUTDOWN, `the full sync wrote back the flags it read at its start (${flags}), undoing the tracker's clean stop`)
  })

  it('--scan after dd conv=notrunc marks exactly the changed blocks', async () => {
    const sync = await vdrep(['fullsync', disk])
    assert.equal(sync.code, 0, sync.stderr)
    const before = await fs.readFile(disk)
    const dd = (seek: number, count: number, bs: number, from = '/dev/urandom') =>
      runOk('dd', [`if=${from}`, `of=${disk}`, `bs=${bs}`, `count=${count}`, `seek=${seek}`, 'conv=notrunc', 'status=none'])
    await dd(3, 1, 4096) // block 0
    await dd(65535, 2, 1) // bytes 65535..65536: blocks 0 and 1
    await dd(77, 3, 65536) // blocks 77..79
    await dd(255, 1, 65536) // the last block
    // Same bytes again: not a change.
    const same = path.join(dir, 'same.bin')
    await fs.writeFile(same, before.subarray(40 * BS, 41 * BS))
    await dd(40, 1, 65536, same)
    const after = await fs.readFile(disk)
    const expected = changedBlocks(before, after, BS)
    assert.deepEqual(expected, [0, 1, 77, 78, 79, 255])
    const r = await vdrep(['track', disk, '--scan', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<{blocksScanned: number; blocksMarked: number; blocksNewlyMarked: number; dirtyBlocks: number}>(r)
    assert.equal(out.blocksScanned, SIZE / BS)
    assert.equal(out.blocksMarked, expected.length)
    assert.equal(out.blocksNewlyMarked, expected.length)
    assert.deepEqual(await bitmapBlocks(disk), expected)
    // Without --json: one summary line.
    const again = await vdrep(['track', disk, '--scan'])
    assert.equal(again.code, 0, again.stderr)
    assert.equal(again.stdout.trim().split('\n').length, 1)
    assert.match(again.stdout, /^scanned .*: 256 blocks .* 6 changed since the last sync \(0 newly marked\); 6 blocks pending/)
    assert.deepEqual(await bitmapBlocks(disk, Region.ACTIVE), expected)
  })

  it('status: tracking or not, state, pending blocks and bytes; --json', async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    await runOk('qemu-io', ['-f', 'raw', uri, '-c', 'write -P 9 0 131072', '-c', `write -P 9 ${SIZE - 100} 100`])
    const live = json<{disks: Array<Record<string, unknown>>}>(await vdrep(['status', disk, '--json']))
    const row = live.disks[0]
    assert.equal(row.tracking, true)
    assert.equal(row.target, replica)
    assert.equal(row.state, 'Full sync needed') // init only, no full sync yet
    assert.equal(row.pendingBlocks, 3)
    assert.equal(row.bytesPending, 3 * BS)
    assert.equal((row.tracker as {pid: number}).pid, tracker.child.pid)
    // Never synced: no index to check against after a crash, so the log is not used (yet).
    assert.deepEqual(row.activityLog, {extents: 2026, extentBytes: 4 * MiB, hotExtents: 0, inUse: false})
    await stopCleanly()
    const text = await vdrep(['status', disk])
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /DISK +TARGET +TRACKING +STATE +PENDING +ACTIVITY LOG +AGE\/RPO +LAST SYNC/)
    assert.match(text.stdout, / 2026 x 4 MiB /, 'the log settings; hot extents only from a running tracker')
    assert.match(text.stdout, /vm\.img +\S+ +no +Full sync needed +3 blocks/)
    const sync = await vdrep(['fullsync', disk])
    assert.equal(sync.code, 0, sync.stderr)
    const after = json<{disks: Array<Record<string, unknown>>}>(await vdrep(['status', disk, '--json']))
    assert.equal(after.disks[0].state, 'Not tracking')
    assert.equal(after.disks[0].reason, null)
    assert.equal(after.disks[0].pendingBlocks, 0)
    assert.equal(typeof after.disks[0].lastSyncMs, 'number')
    // Tracked after a proved sync: OK; while a push holds the freeze: Pushing.
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    await runOk('qemu-io', ['-f', 'raw', uri, '-c', 'write -P 7 0 4096'])
    const ok = json<{disks: Array<Record<string, unknown>>}>(await vdrep(['status', disk, '--json']))
    assert.equal(ok.disks[0].state, 'OK')
    assert.equal(ok.disks[0].pendingBlocks, 1)
    const c = await TrackerControlClient.connect(disk)
    await c.freeze()
    const pushing = json<{disks: Array<Record<string, unknown>>}>(await vdrep(['status', disk, '--json']))
    assert.equal(pushing.disks[0].state, 'Pushing')
    assert.equal(pushing.disks[0].inflightBlocks, 1)
    assert.equal(pushing.disks[0].pendingBlocks, 1)
    await c.complete(true)
    await c.close()
    await stopCleanly()
    const missing = json<{disks: Array<Record<string, unknown>>}>(await vdrep(['status', path.join(dir, 'nope.img'), '--json']))
    assert.equal(missing.disks[0].state, 'Error')
  })
})

describe('vdrep track: the control socket (freeze, copy-on-write, complete)', function () {
  this.timeout(120_000)
  let dir: string
  let disk: string
  let sock: string
  let uri: string
  let tracker: RunningTracker | undefined
  let client: TrackerControlClient | undefined

  beforeEach(async () => {
    dir = await tempDir('vdrep-ctl-')
    disk = path.join(dir, 'vm.img')
    sock = path.join(dir, 'nbd.sock')
    uri = `nbd+unix:///vm.img?socket=${sock}`
    await fs.mkdir(path.join(dir, 'replica'))
    await makeMixedDisk(disk, SIZE, 'ctl', MiB)
    await initDisk(disk, path.join(dir, 'replica', 'vm.img'))
  })

  afterEach(async () => {
    await client?.close().catch(() => {})
    client = undefined
    if (tracker && tracker.child.exitCode === null && tracker.child.signalCode === null) await tracker.stop('SIGKILL')
    tracker = undefined
    await fs.rm(dir, {recursive: true, force: true})
  })

  const qemuIo = (...cmds: string[]) => runOk('qemu-io', ['-f', 'raw', uri, ...cmds.flatMap((c) => ['-c', c])])

  async function waitFor(what: string, cond: () => Promise<boolean>): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if (await cond()) return
      await new Promise((r) => setTimeout(r, 25))
    }
    assert.fail(`timed out waiting for ${what}`)
  }

  it('freeze, then writes to frozen blocks: readBlocks returns the pre-freeze contents; new writes go to the next push; complete(true) clears', async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    await qemuIo('write -P 0x31 0 196608', `write -P 0x32 ${SIZE - BS} ${BS}`) // blocks 0,1,2 and 255
    const frozenImage = await fs.readFile(disk)
    client = await TrackerControlClient.connect(disk)
    const f = await client.freeze()
    assert.equal(f.blockSize, BS)
    assert.equal(f.blockCount, SIZE / BS)
    assert.equal(f.blocks, 4)
    assert.deepEqual([...f.bitmap.setBlocks()], [0, 1, 2, 255])
    const st = await client.status()
    assert.equal(st.dirtyBlocks, 0)
    assert.equal(st.inflightBlocks, 4)
    assert.ok(st.frozen)
    // The in-flight pages are durable in the .psf, the active ones cleared.
    assert.deepEqual(await bitmapBlocks(disk, Region.INFLIGHT), [0, 1, 2, 255])
    assert.deepEqual(await bitmapBlocks(disk, Region.ACTIVE), [])

    // The VM overwrites frozen blocks (partly) and writes a new one.
    await qemuIo('write -P 0x41 70000 1000', 'write -z 131072 65536', `write -P 0x42 ${SIZE - 10} 10`, 'write -P 0x43 655360 4096')
    const data = await client.readBlocks(0, 3)
    assert.ok(data.equals(frozenImage.subarray(0, 3 * BS)), 'blocks 0..2 are not as of the freeze')
    const last = await client.readBlocks(255, 1)
    assert.ok(last.equals(frozenImage.subarray(SIZE - BS)), 'the last block is not as of the freeze')
    await assert.rejects(client.readBlocks(10, 1), /not in the frozen set/)
    await assert.rejects(client.readBlocks(255, 2), /outside the disk/)
    const st2 = await client.status()
    assert.deepEqual(st2.dirtyBlocks, 4) // blocks 1, 2, 10, 255 written since the freeze
    assert.ok((st2.frozen?.cowBytes ?? 0) >= 3 * BS)
    assert.ok(await fs.stat(`${disk}.vdrep.cow`).then(() => true))

    const done = await client.complete(true)
    assert.equal(done.cleared, 4)
    assert.equal((await client.status()).inflightBlocks, 0)
    await assert.rejects(fs.stat(`${disk}.vdrep.cow`), /ENOENT/)
    await client.close()
    client = undefined
    const r = await tracker.stop()
    assert.equal(r.code, 0, r.stderr)
    tracker = undefined
    assert.deepEqual(await bitmapBlocks(disk, Region.ACTIVE), [1, 2, 10, 255])
    assert.deepEqual(await bitmapBlocks(disk, Region.INFLIGHT), [])
  })

  it('complete(false) merges the frozen blocks back; a client that hangs up without complete does too', async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    await qemuIo('write -P 1 0 4096', `write -P 2 ${20 * BS} 4096`)
    client = await TrackerControlClient.connect(disk)
    await client.freeze()
    await qemuIo(`write -P 3 ${30 * BS} 4096`)
    await assert.rejects(
      TrackerControlClient.connect(disk).then(async (other) => {
        try {
          return await other.freeze()
        } finally {
          await other.close()
        }
      }),
      /another client holds the freeze/,
    )
    assert.deepEqual(await client.complete(false), {cleared: 0, mergedBack: 2})
    const st = await client.status()
    assert.equal(st.dirtyBlocks, 3)
    assert.equal(st.inflightBlocks, 0)

    await client.freeze()
    await client.close() // no complete: a failed push
    client = undefined
    const probe = await TrackerControlClient.connect(disk)
    await waitFor('the merge back', async () => (await probe.status()).frozen === null)
    const st2 = await probe.status()
    await probe.close()
    assert.equal(st2.dirtyBlocks, 3)
    assert.equal(st2.inflightBlocks, 0)
    const r = await tracker.stop()
    assert.equal(r.code, 0)
    tracker = undefined
    assert.match(r.stderr, /disconnected without completing; 3 blocks were handed back/)
    assert.deepEqual(await bitmapBlocks(disk), [0, 20, 30])
    assert.deepEqual(await bitmapBlocks(disk, Region.INFLIGHT), [])
  })

  it("the copy-on-write cap cancels the freeze: reads fail, the blocks go back, the VM's writes succeed", async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`, '--cow-limit', '128k'])
    await qemuIo('write -P 1 0 262144') // blocks 0..3
    client = await TrackerControlClient.connect(disk)
    await client.freeze()
    await qemuIo('write -P 2 0 262144') // needs 256 KiB of copies: over the cap
    await waitFor('the cancelled freeze to end', async () => (await client!.status()).frozen === null)
    await assert.rejects(client.readBlocks(0, 1), /freeze was cancelled: the copy-on-write side file reached its limit of 128/)
    await assert.rejects(client.complete(true), /freeze was cancelled/)
    assert.deepEqual(await client.complete(false), {cleared: 0, mergedBack: 0})
    const st = await client.status()
    assert.equal(st.dirtyBlocks, 4)
    assert.equal(st.inflightBlocks, 0)
    const bytes = await fs.readFile(disk)
    assert.ok(
      bytes.subarray(0, 262144).every((b) => b === 2),
      "the VM's write was lost",
    )
    const r = await tracker.stop()
    tracker = undefined
    assert.match(r.stderr, /freeze was cancelled: the copy-on-write side file reached its limit of 128/)
  })

  it('a tracker killed while a push holds the freeze: the push sees the tracker gone, the restart merges the blocks back', async () => {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    await qemuIo('write -P 1 0 4096', `write -P 2 ${50 * BS} 4096`)
    client = await TrackerControlClient.connect(disk)
    await client.freeze()
    tracker.child.kill('SIGKILL')
    await tracker.exited
    tracker = undefined
    await assert.rejects(client.readBlocks(0, 1), /tracker closed the control connection/)
    assert.deepEqual(await bitmapBlocks(disk, Region.INFLIGHT), [0, 50])
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    const r = await tracker.stop()
    tracker = undefined
    assert.equal(r.code, 0)
    assert.deepEqual(await bitmapBlocks(disk), [0, 50])
    assert.deepEqual(await bitmapBlocks(disk, Region.INFLIGHT), [])
  })

  it('the socket is 0600; a connection from another uid is refused; hostile bytes get an error, not a crash', async function () {
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    const ctl = `${disk}.vdrep.sock`
    assert.equal((await fs.stat(ctl)).mode & 0o777, 0o600)
    const raw = (bytes: Buffer, as?: string) => {
      // Prints what comes back (the first reply, or everything until the tracker hangs up).
      const script =
        "const s=require('net').connect(process.argv[1]);let o=Buffer.alloc(0);const done=()=>{console.log(o.toString('latin1'));process.exit(0)};" +
        "s.on('data',d=>{o=Buffer.concat([o,d]);setTimeout(done,100)});s.on('connect',()=>s.write(Buffer.from(process.argv[2],'hex')));" +
        "s.on('error',e=>{console.log('ERR '+e.code);process.exit(0)});s.on('close',done);setTimeout(done,5000)"
      const args = ['-e', script, ctl, bytes.toString('hex')]
      return as ? run('runuser', ['-u', as, '--', process.execPath, ...args]) : run(process.execPath, args)
    }
    // Hostile input from the owner: bad magic, a huge length, bad JSON, unknown op.
    assert.match((await raw(Buffer.from('GET / HTTP/1.0\r\n\r\n'))).stdout, /CONTROL_BAD_MAGIC/)
    assert.match((await raw(Buffer.from('5644544302010000ffffffff00000000', 'hex'))).stdout, /CONTROL_BAD_LENGTH/)
    assert.match((await raw(Buffer.from('56445443020100000200000001000001', 'hex'))).stdout, /CONTROL_BAD_LENGTH.*data length 16777217 exceeds 16777216/)
    // Data on an op that takes none: refused, the data dropped, the connection still answers.
    const st = Buffer.from('{"op":"status"}')
    const withData = Buffer.from('56445443020100000f00000003000000', 'hex')
    const plain = Buffer.from('56445443020100000f00000000000000', 'hex')
    const both = (await raw(Buffer.concat([withData, st, Buffer.from('abc'), plain, st]))).stdout
    assert.match(both, /CONTROL_BAD_REQUEST.*status: takes no data/)
    assert.match(both, /"pid":\d+/, 'the next request on the same connection is answered')
    assert.match((await raw(Buffer.from('56445443020100000300000000000000' + Buffer.from('{x}').toString('hex'), 'hex'))).stdout, /CONTROL_BAD_JSON/)
    assert.match((await raw(Buffer.from('56445443010100000200000000000000' + Buffer.from('{}').toString('hex'), 'hex'))).stdout, /CONTROL_VERSION/)
    const unknown = Buffer.from('{"op":"rm -rf"}')
    const hdr = Buffer.from('56445443020100000000000000000000', 'hex')
    hdr.writeUInt32LE(unknown.length, 8)
    assert.match((await raw(Buffer.concat([hdr, unknown]))).stdout, /CONTROL_UNKNOWN_OP/)

    // Another uid: the 0600 mode keeps it out; with the mode opened up, SO_PEERCRED does.
    if (!ensureUser('vdreptest')) this.skip()
    await fs.chmod(dir, 0o755)
    const denied = await raw(Buffer.from('56445443020100000f000000000000007b226f70223a22737461747573227d', 'hex'), 'vdreptest')
    assert.match(denied.stdout, /ERR EACCES/, denied.stdout + denied.stderr)
    await fs.chmod(ctl, 0o666)
    const refused = await raw(Buffer.from('56445443020100000f000000000000007b226f70223a22737461747573227d', 'hex'), 'vdreptest')
    assert.match(refused.stdout, /CONTROL_DENIED.*uid \d+ may not use this tracker's control socket/, refused.stdout + refused.stderr)
    // The tracker is still fine and answers its owner.
    client = await TrackerControlClient.connect(disk)
    assert.equal((await client.status()).pid, tracker.child.pid)
    const r = await tracker.stop()
    tracker = undefined
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stderr, /refused a connection: uid \d+ may not use/)
  })
})
