// `vdrep push` to a local-path target without a tracker: trust checks, fallbacks that say
// why, the lock, and the bundle path (blocks marked in the .psf as `track --scan` would).
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {collect, json, startVdrep, vdrep} from '../helpers/cli.js'
import {filesEqual, makeMixedDisk, scribbleBlocks, tempDir} from '../helpers/disks.js'
import {PsfFile} from '../../src/core/psf/psf-file.js'
import {HeaderFlag} from '../../src/core/psf/header.js'
import {markChanged} from '../helpers/change-record.js'
import type {PushResult} from '../../src/core/delta/push.js'

const MiB = 1 << 20
const BS = 64 * 1024

/** What `vdrep push --json` prints: the push result itself. */
type PushJson = PushResult

describe('push to a local replica (CLI, no tracker)', function () {
  this.timeout(120_000)
  let dir: string
  let disk: string
  let replica: string

  beforeEach(async () => {
    dir = await tempDir()
    disk = path.join(dir, 'vm.img')
    replica = path.join(dir, 'replica', 'vm.img')
    await fs.mkdir(path.dirname(replica))
    await makeMixedDisk(disk, 16 * MiB, 'push')
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('before any full sync, falls back to one and says why; --no-fallback exits 4', async () => {
    const nf = await vdrep(['push', disk, '--no-fallback'])
    assert.equal(nf.code, 4, nf.stderr)
    assert.match(nf.stderr, /no full sync has completed/)
    await assert.rejects(fs.stat(replica), 'nothing written')
    const r = await vdrep(['push', disk])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /full sync instead \(no full sync has completed since init\)/)
    assert.equal(r.stdout.trim().split('\n').length, 1, 'one summary line')
    // The engine marks the fallback a notice: shown without --verbose, on stderr; details are not.
    assert.match(r.stderr, /^vdrep: falling back to a full sync: no full sync has completed/m)
    assert.doesNotMatch(r.stderr, /receiver|journal|committed/)
    assert.ok(await filesEqual(disk, replica))
  })

  it('ships exactly the marked blocks as one committed bundle, and the next push nothing', async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    const changed = await scribbleBlocks(disk, BS, 6, 'p1')
    await markChanged(disk, changed)
    const r = await vdrep(['push', disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<PushJson>(r)
    assert.equal(out.mode, 'delta')
    assert.equal(out.seq, 1)
    assert.equal(out.blocks, changed.length)
    assert.equal(out.bytesSent, changed.length * BS)
    assert.ok(await filesEqual(disk, replica))
    await assert.rejects(fs.stat(`${replica}.vdrep-journal`), 'the journal is gone after commit')
    const again = json<PushJson>(await vdrep(['push', disk, '--json']))
    assert.equal(again.mode, 'delta')
    assert.equal(again.blocks, 0)
    assert.equal(again.seq, 2)
  })

  it('a disk written while no tracker ran: the push checks every block against the index first, then ships exactly those blocks as a delta', async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    await new Promise((r) => setTimeout(r, 20))
    const written = await scribbleBlocks(disk, BS, 2, 'untracked')
    const r = await vdrep(['push', disk, '--no-fallback', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<PushJson>(r)
    assert.equal(out.mode, 'delta', 'a local check, not a full sync')
    assert.equal(out.blocks, written.length)
    assert.equal(out.bytesSent, written.length * BS)
    assert.equal(out.verified?.blocksNewlyMarked, written.length)
    assert.match(out.verified?.reasons ?? '', /written while no tracker ran/)
    assert.ok(await filesEqual(disk, replica))
    const again = json<PushJson>(await vdrep(['push', disk, '--json']))
    assert.equal(again.verified, undefined, 'the push recorded its clean point: no second check')
    assert.equal(again.blocks, 0)
    // Without --json the summary line says so.
    await new Promise((r) => setTimeout(r, 20))
    await scribbleBlocks(disk, BS, 1, 'untracked again')
    const said = await vdrep(['push', disk])
    assert.equal(said.code, 0, said.stderr)
    assert.match(said.stdout, /1 blocks .* checked locally first, 1 unmarked blocks found changed/)
  })

  it("a write made after the push checked the record (a pre-hook's) is not hidden: the next push finds and ships it", async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    await new Promise((r) => setTimeout(r, 20))
    const changed = await scribbleBlocks(disk, BS, 2, 'marked')
    await markChanged(disk, changed)
    // The hook writes a block that is not marked, after the check and before the freeze (as a
    // guest's flush at fsfreeze does): this push cannot ship it.
    const late = [...Array(256).keys()].find((b) => !changed.includes(b)) as number
    const hook = `printf late | dd of='${disk}' bs=1 seek=${late * BS + 3} conv=notrunc status=none`
    const r = await vdrep(['push', disk, '--json', '--pre-hook', hook])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(json<PushJson>(r).mode, 'delta')
    assert.equal(json<PushJson>(r).blocks, changed.length)
    assert.equal(await filesEqual(disk, replica), false, 'the late write is not on the replica yet')
    // The commit recorded the stat the record was checked against, not one taken after the hook.
    const next = json<PushJson>(await vdrep(['push', disk, '--json']))
    assert.equal(next.mode, 'delta')
    assert.equal(next.verified?.blocksNewlyMarked, 1, `the late write was hidden from the next push`)
    assert.equal(next.blocks, 1)
    assert.ok(await filesEqual(disk, replica))
  })

  it('after a tracker died (its clean flag clear), the push checks for writes made after its end (issue 18 case 5) and ships them with the marked ones', async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    await new Promise((r) => setTimeout(r, 20))
    const marked = await scribbleBlocks(disk, BS, 2, 'tracked')
    await markChanged(disk, marked)
    const psf = await PsfFile.open(`${disk}.psf`)
    await psf.updateHeader((cur) => ({flags: cur.flags & ~HeaderFlag.CLEAN_SHUTDOWN})) // as `vdrep track` leaves it when killed
    await psf.close()
    // Written after the kill: in no bitmap.
    const after = (await scribbleBlocks(disk, BS, 3, 'after the kill')).filter((b) => !marked.includes(b))
    const first = await vdrep(['push', disk, '--json', '--no-fallback'])
    assert.equal(first.code, 0, first.stderr)
    const out = json<PushJson>(first)
    assert.equal(out.mode, 'delta')
    assert.match(out.verified?.reasons ?? '', /no tracker stopped cleanly/)
    assert.equal(out.verified?.blocksNewlyMarked, after.length)
    assert.equal(out.blocks, new Set([...marked, ...after]).size)
    assert.ok(await filesEqual(disk, replica), 'the writes made after the kill are on the replica')
    await new Promise((r) => setTimeout(r, 20))
    await scribbleBlocks(disk, BS, 1, 'after the push, no tracker')
    const next = json<PushJson>(await vdrep(['push', disk, '--json']))
    assert.equal(next.mode, 'delta')
    assert.equal(next.verified?.blocksNewlyMarked, 1)
    assert.ok(await filesEqual(disk, replica))
  })

  it("two disks with one local replica: while one syncs, the other's full sync and push are refused (3); the first ends equal", async () => {
    const other = path.join(dir, 'other.img')
    await makeMixedDisk(other, 16 * MiB, 'push-other')
    assert.equal((await vdrep(['init', other, '--to', replica])).code, 0)
    const first = startVdrep(['fullsync', disk, '--bwlimit', '4M'])
    const firstDone = collect(first)
    // Wait until the first has the replica (its file exists), then come second.
    for (
      let i = 0;
      i < 200 &&
      !(await fs.stat(replica).then(
        () => true,
        () => false,
      ));
      i++
    )
      await new Promise((r) => setTimeout(r, 20))
    for (const args of [
      ['fullsync', other],
      ['push', other],
    ]) {
      const r = await vdrep(args)
      // Refused by the lock while the first writes, or (the first done) as another source's replica.
      assert.ok(r.code === 3 || r.code === 10, `${args.join(' ')} of another disk to the replica a local sync is writing: ${r.stdout}${r.stderr}`)
      assert.match(r.stderr, r.code === 3 ? /another vdrep process .* is writing .*vm\.img/ : /belongs to another source/)
    }
    const done = await firstDone
    assert.equal(done.code, 0, done.stderr)
    assert.ok(await filesEqual(disk, replica), 'the replica is the first disk, untouched by the second')
  })

  it("a replica changed behind vdrep's back: refused as DIVERGED (exit 11), never overwritten by the fallback; --discard-replica-changes resyncs, with the reason", async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    await new Promise((r) => setTimeout(r, 20))
    const fh = await fs.open(replica, 'r+')
    await fh.write(Buffer.from('tampered'), 0, 8, 5 * BS)
    await fh.close()
    const kept = await fs.readFile(replica)
    const refused = await vdrep(['push', disk, '--json'])
    assert.equal(refused.code, 11, refused.stdout + refused.stderr)
    assert.deepEqual(await fs.readFile(replica), kept, 'the replica keeps its changes')
    const r = await vdrep(['push', disk, '--json', '--discard-replica-changes'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<PushJson>(r)
    assert.equal(out.mode, 'fullsync')
    assert.match(out.reason ?? '', /written outside vdrep/)
    assert.ok(await filesEqual(disk, replica))
  })

  it("a .psf restored from a backup (its sequence behind the replica's): one full sync, then deltas again", async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    await fs.copyFile(`${disk}.psf`, path.join(dir, 'psf.backup'))
    for (const tag of ['b1', 'b2']) {
      await markChanged(disk, await scribbleBlocks(disk, BS, 3, tag))
      assert.equal(json<PushJson>(await vdrep(['push', disk, '--json'])).mode, 'delta')
    }
    await fs.copyFile(path.join(dir, 'psf.backup'), `${disk}.psf`)
    await markChanged(disk, await scribbleBlocks(disk, BS, 3, 'b3'))
    const behind = json<PushJson>(await vdrep(['push', disk, '--json']))
    assert.equal(behind.mode, 'fullsync')
    // The receiver tells first: the record's last commit id is not the replica's (the commit chain).
    assert.match(behind.reason ?? '', /the commit chain differs/)
    assert.ok(await filesEqual(disk, replica))
    // The full sync settled the sequence both sides agree on: deltas again, not a full sync per push.
    const changed = await scribbleBlocks(disk, BS, 4, 'b4')
    await markChanged(disk, changed)
    const r = await vdrep(['push', disk, '--json', '--no-fallback'])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    const out = json<PushJson>(r)
    assert.equal(out.mode, 'delta')
    assert.equal(out.seq, 3)
    assert.equal(out.blocks, changed.length)
    assert.ok(await filesEqual(disk, replica))
  })

  it("a deleted .psf: push says how to recover; after init the replica is another source's (exit 10) until handed over, then the push falls back to a full sync", async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    await fs.rm(`${disk}.psf`)
    const r = await vdrep(['push', disk])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /no state file/)
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
    const foreign = await vdrep(['push', disk])
    assert.equal(foreign.code, 10, foreign.stdout + foreign.stderr)
    assert.match(foreign.stderr, /--take-over-replica/)
    const out = json<PushJson>(await vdrep(['push', disk, '--json', '--take-over-replica']))
    assert.equal(out.mode, 'fullsync')
    assert.ok(await filesEqual(disk, replica))
  })

  it("a second push while one holds the lock exits 3 at once; a dead holder's lock is taken over", async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    const lockFile = `${disk}.vdrep.lock`
    const holder = spawn('flock', ['-n', lockFile, 'sleep', '30'], {stdio: 'ignore', detached: true})
    try {
      await new Promise((r) => setTimeout(r, 300))
      const t = performance.now()
      const r = await vdrep(['push', disk])
      assert.equal(r.code, 3, r.stderr)
      assert.match(r.stderr, /already working on/)
      assert.ok(performance.now() - t < 5000, 'refused at once')
      const f = await vdrep(['fullsync', disk])
      assert.equal(f.code, 3, 'a full sync of the same disk is refused too')
    } finally {
      process.kill(-(holder.pid as number), 'SIGKILL') // flock and its sleep, which holds the lock too
    }
    await new Promise((r) => setTimeout(r, 300))
    await fs.writeFile(lockFile, 'pid 999999, push, since long ago\n')
    assert.equal((await vdrep(['push', disk])).code, 0, 'the stale lock is taken over')
  })

  it('without the addon a second push is refused all the same (the portable lock), and a killed holder frees it', async () => {
    const noNative = {...process.env, VDREP_NO_NATIVE: '1'}
    assert.equal((await vdrep(['fullsync', disk], {env: noNative})).code, 0)
    const locksUrl = new URL('../../src/core/locks/index.js', import.meta.url).href
    const script = `const m = await import(${JSON.stringify(locksUrl)}); globalThis.held = await m.acquireDiskLock(${JSON.stringify(disk)}, 'push'); console.log('held'); setInterval(() => {}, 1000)`
    const holder = spawn(process.execPath, ['--input-type=module', '-e', script], {stdio: ['ignore', 'pipe', 'inherit'], env: noNative})
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.once('data', () => resolve())
        holder.once('exit', (code) => reject(new Error(`the holder exited (${code})`)))
      })
      const r = await vdrep(['push', disk], {env: noNative})
      assert.equal(r.code, 3, r.stderr)
      assert.match(r.stderr, new RegExp(`pid ${holder.pid}, push, .* is already working on`))
    } finally {
      holder.kill('SIGKILL')
    }
    await new Promise((r) => holder.once('exit', r))
    assert.equal((await vdrep(['push', disk], {env: noNative})).code, 0, "the dead holder's lock is free")
  })

  it('--if-due skips a push that is not due, silently without a terminal (cron mails any output); --verbose and --json say so', async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    const r = await vdrep(['push', disk, '--if-due'])
    assert.equal(r.code, 0)
    assert.equal(r.stdout + r.stderr, '', 'nothing printed from cron when not due')
    const loud = await vdrep(['push', disk, '--if-due', '--verbose'])
    assert.match(loud.stdout, /not due/)
    assert.equal(json<PushJson>(await vdrep(['push', disk, '--if-due', '--json'])).mode, 'skipped')
  })

  it('status --check exits 6 once the replica is older than the RPO, 0 while it is not', async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    const fresh = await vdrep(['status', disk, '--check'])
    assert.equal(fresh.code, 0, fresh.stdout + fresh.stderr)
    // As if 16 minutes passed (RPO 15m): move the last sync back.
    const psf = await PsfFile.open(`${disk}.psf`)
    await psf.updateHeader({lastSyncMs: Date.now() - 16 * 60_000})
    await psf.close()
    const late = await vdrep(['status', disk, '--check', '--json'])
    assert.equal(late.code, 6)
    const row = json<{disks: Array<{state: string; rpoViolated: boolean}>}>(late).disks[0]
    assert.equal(row.state, 'RPO violation')
    assert.equal(row.rpoViolated, true)
    const due = await vdrep(['push', disk, '--if-due', '--json'])
    assert.equal(json<PushJson>(due).mode, 'delta', 'an overdue disk is due')
    assert.equal((await vdrep(['status', disk, '--check'])).code, 0, 'the push brought it back within the RPO')
  })

  it('a source that shrank since the last sync: clear error (exit 2), nothing written; --truncate-replica cuts the replica', async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    const before = await fs.readFile(replica)
    await fs.truncate(disk, 8 * MiB)
    const r = await vdrep(['push', disk])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /shrank/)
    assert.doesNotMatch(r.stdout, /committed|proved/)
    assert.ok(before.equals(await fs.readFile(replica)), 'the replica is untouched')
    const t = await vdrep(['push', disk, '--truncate-replica', '--json'])
    assert.equal(t.code, 0, t.stderr)
    assert.equal(json<PushJson>(t).mode, 'fullsync')
    assert.ok(await filesEqual(disk, replica))
  })
})
