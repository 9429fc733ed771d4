// The whole cycle over SSH, through the real binary: a real sshd, a real `vdrep serve`, a
// real `vdrep track` that qemu-io writes through, and `vdrep push` to
// `root@127.0.0.1:PORT:/path`. Point in time under concurrent writes, kill -9 of either end,
// a cut SSH connection, fallbacks that say why, the lock, and status --check.
import assert from 'node:assert/strict'
import type {ChildProcess} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {PsfFile} from '../../src/core/psf/psf-file.js'
import {readReplicaState} from '../../src/core/receiver/replica-state.js'
import {collect, json, type CliResult} from '../helpers/cli.js'
import {cmpEqual, exists, MiB, qemuIo, sha256, sleep, SshCycle, waitFor, type SshDisk} from '../helpers/cycle.js'
import {seededBytes} from '../helpers/disks.js'
import type {RunningTracker} from '../core/tracker/tracker-helpers.js'
import type {PushResult} from '../../src/core/delta/push.js'

const BS = 64 * 1024

/** What `vdrep push --json` prints: the push result itself. */
type PushJson = PushResult

interface StatusRow {
  state: string
  reason: string | null
  tracking: boolean
  pendingBlocks: number
  dirtyBlocks: number
  inflightBlocks: number
  lastSeq: number | null
  lastSyncMs: number | null
  rpoViolated: boolean
}

describe('push over SSH: tracker, qemu-io, vdrep serve (real sshd)', function () {
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
    if (!c.serve.running) await c.serve.start()
  })

  async function status(disk: string): Promise<StatusRow> {
    const r = await c.vdrep(['status', disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    return json<{disks: StatusRow[]}>(r).disks[0]!
  }

  async function pushJson(disk: string, ...extra: string[]): Promise<PushJson> {
    const r = await c.vdrep(['push', disk, '--json', ...extra])
    assert.equal(r.code, 0, `push exited ${r.code}: ${r.stdout}\n${r.stderr}`)
    return json<PushJson>(r)
  }

  it('track + qemu-io writes + push over SSH: the replica is cmp-equal; status shows the sequence and OK', async () => {
    const d = await c.newDisk('basic', 32 * MiB)
    const t = await c.track(d)
    await qemuIo(d.uri, [
      'write -P 0xab 1000 3000',
      'write -P 0x11 65535 2',
      'write -P 0x22 5242881 200000',
      'write -z 1048576 131072',
      `write -P 0x33 ${32 * MiB - 4096} 4096`,
      'flush',
    ])
    // blocks 0, 1, 80..83, 16..17, 511
    const before = await status(d.disk)
    assert.equal(before.state, 'OK')
    assert.equal(before.tracking, true)
    assert.equal(before.pendingBlocks, 9)
    const out = await pushJson(d.disk)
    assert.equal(out.mode, 'delta')
    assert.equal(out.seq, 1)
    assert.equal(out.blocks, 9)
    assert.ok(await cmpEqual(d.disk, d.replica), 'the replica differs from the source after the push')
    // The receiver answers at its commit point and removes the journal right after.
    await waitFor('the journal to be gone after the commit', async () => !(await exists(`${d.replica}.vdrep-journal`)), 10_000, 20)
    const after = await status(d.disk)
    assert.equal(after.state, 'OK')
    assert.equal(after.pendingBlocks, 0)
    assert.equal(after.lastSeq, 1)
    assert.ok((after.lastSyncMs ?? 0) > Date.now() - 60_000)
    const text = await c.vdrep(['status', d.disk])
    assert.match(text.stdout, /basic\.img +\S+ +pid \d+, \d+ clients? +OK +0 blocks/)
    assert.equal((await readReplicaState(d.replica)).state?.lastSeq, 1)
    // Without a TTY: exactly one summary line.
    await qemuIo(d.uri, ['write -P 0x44 0 65536'])
    const line = await c.vdrep(['push', d.disk])
    assert.equal(line.code, 0, line.stderr)
    assert.equal(line.stdout.trim().split('\n').length, 1, line.stdout)
    assert.match(line.stdout, /sequence 2 committed, 1 blocks/)
    assert.ok(await cmpEqual(d.disk, d.replica))
    await c.untrack(t)
  })

  it('writes running during the push: the replica holds the disk as of the point in time; the next push converges', async () => {
    const seed = process.env.VDREP_TEST_SEED ?? String(Date.now())
    console.log(`      seed ${seed} (VDREP_TEST_SEED=${seed} reproduces the write order)`)
    const rnd = seededBytes(`pit:${seed}`, 1 << 16)
    let r = 0
    const next = (n: number) => rnd.readUInt32LE((r++ * 4) % (rnd.length - 4)) % n
    const shuffled = <T>(xs: T[]) => {
      const a = [...xs]
      for (let i = a.length - 1; i > 0; i--) {
        const j = next(i + 1)
        ;[a[i], a[j]] = [a[j]!, a[i]!]
      }
      return a
    }
    const d = await c.newDisk('pit', 64 * MiB)
    const t = await c.track(d)
    // S: 256 of the 1024 blocks, chosen from the seed; T: 16 other blocks only written after the point in time.
    const all = shuffled(Array.from({length: 1024}, (_, i) => i))
    const S = all.slice(0, 256).sort((a, b) => a - b)
    const T = all.slice(256, 272).sort((a, b) => a - b)
    const pattern = (block: number, gen: number) => ((block * 31 + gen * 17) % 255) + 1
    const writes = (blocks: number[], gen: number) => shuffled(blocks).map((b) => `write -P ${pattern(b, gen)} ${b * BS} ${BS}`)
    await qemuIo(d.uri, [...writes(S, 1), 'flush']) // writer A: generation 1
    const atPointInTime = await fs.readFile(d.disk)
    const marker = path.join(c.dir, 'pit.marker')
    // The post-hook runs right after the freeze: every write made once the marker exists lands after the point in time.
    const pushing = c.startVdrep(['push', d.disk, '--json', '--compress', 'none', '--bwlimit', '4M', '--post-hook', `touch ${marker}`])
    const result = collect(pushing)
    await waitFor('the post-hook marker', () => exists(marker), 30_000, 5)
    const runningAtStart = pushing.exitCode === null
    await qemuIo(d.uri, [...writes(S, 2), ...writes(T, 2), 'flush']) // writer B: generation 2, then 3
    await qemuIo(d.uri, [...writes(S, 3), 'flush'])
    const runningAfterB = pushing.exitCode === null
    const res = await result
    assert.equal(res.code, 0, res.stderr)
    assert.ok(runningAtStart && runningAfterB, 'the writes did not overlap the push: the test proves nothing (raise the bundle or lower --bwlimit)')
    const out = json<PushJson>(res)
    assert.equal(out.mode, 'delta')
    assert.equal(out.blocks, S.length)
    // The replica is exactly the disk as it was at the freeze: generation 1 in S, nothing of T.
    const replica = await fs.readFile(d.replica)
    for (const b of S) {
      const got = replica.subarray(b * BS, (b + 1) * BS)
      if (!got.equals(atPointInTime.subarray(b * BS, (b + 1) * BS))) {
        const gen = [1, 2, 3].find((g) => got.every((x) => x === pattern(b, g)))
        assert.fail(`replica block ${b} holds ${gen ? `generation ${gen}` : 'a mix'}, not generation 1 (seed ${seed})`)
      }
    }
    assert.ok(replica.equals(atPointInTime), `the replica differs from the disk as of the point in time (seed ${seed})`)
    // The disk holds the last generation; the next push ships S and T and converges.
    const now = await fs.readFile(d.disk)
    for (const b of S)
      assert.ok(
        now.subarray(b * BS, (b + 1) * BS).every((x) => x === pattern(b, 3)),
        `disk block ${b} is not generation 3`,
      )
    const st = await status(d.disk)
    assert.equal(st.pendingBlocks, S.length + T.length, 'the writes made during the push are pending for the next one')
    const second = await pushJson(d.disk)
    assert.equal(second.mode, 'delta')
    assert.equal(second.blocks, S.length + T.length)
    assert.ok(await cmpEqual(d.disk, d.replica))
    await c.untrack(t)
  })

  it('kill -9 of vdrep serve during apply: after the restart the replica is the old point or the new one; the next push converges', async () => {
    const d = await c.newDisk('rkill', 128 * MiB)
    const oldCopy = path.join(c.dir, 'rkill.old')
    await fs.copyFile(d.replica, oldCopy)
    const oldSum = await sha256(oldCopy)
    const t = await c.track(d)
    // 80 MiB changed: 10 writes of 8 MiB, each its own pattern.
    await qemuIo(d.uri, [...Array.from({length: 10}, (_, i) => `write -P ${0x41 + i} ${(16 + i * 8) * MiB} ${8 * MiB}`), 'flush'])
    const newSum = await sha256(d.disk)
    assert.notEqual(newSum, oldSum)
    const journal = `${d.replica}.vdrep-journal`
    const blocks = (80 * MiB) / BS
    const sealedSize = 64 + blocks * (48 + BS) + 64
    const replicaMtime = (await fs.stat(d.replica, {bigint: true})).mtimeNs
    const pushing = c.startVdrep(['push', d.disk, '--json'])
    const result = collect(pushing)
    // Kill once the journal is sealed and the replica starts changing (the apply), as soon as we see it.
    let seen = ''
    await waitFor(
      'the apply to start',
      async () => {
        const j = await fs.stat(journal).catch(() => undefined)
        const m = (await fs.stat(d.replica, {bigint: true})).mtimeNs
        if (j && j.size >= sealedSize && m !== replicaMtime) seen = 'journal sealed, replica changing'
        else if (!j && m !== replicaMtime) seen = 'journal already gone (too late: applied and committed)'
        else if (pushing.exitCode !== null) seen = 'push already exited'
        return seen !== ''
      },
      60_000,
      1,
    )
    await c.serve.kill9()
    const journalLeft = await exists(journal)
    console.log(`      killed vdrep serve: ${seen}; journal left: ${journalLeft}`)
    const res = await result
    await c.serve.start()
    const afterRestart = await sha256(d.replica)
    const journalAfterRestart = await exists(journal)
    const point = afterRestart === oldSum ? 'the old point' : afterRestart === newSum ? 'the new point' : 'a mix of both (torn)'
    console.log(`      push exit ${res.code ?? res.signal}; after the restart the replica is ${point}, journal ${journalAfterRestart ? 'still there' : 'gone'}`)
    if (res.code === 0) assert.equal(afterRestart, newSum, 'the push reported a commit')
    else {
      assert.equal(res.code, 7, res.stdout + res.stderr)
      const err = json<{error: string; message: string}>(res)
      assert.match(`${err.error}: ${err.message}`, /closed the connection before committing/)
    }
    // The next push (the receiver replays or discards the journal first) converges.
    const next = await c.vdrep(['push', d.disk, '--json', '-v'])
    assert.equal(next.code, 0, next.stderr)
    const out = json<PushJson>(next)
    assert.equal(out.mode, 'delta', `the next push should be a delta: ${next.stdout}`)
    assert.ok(await cmpEqual(d.disk, d.replica), 'the next push did not converge')
    assert.ok(!(await exists(journal)))
    await c.untrack(t)
    // The contract, checked last so the rest above is proved either way: a restarted receiver
    // leaves the replica at one point or the other, before any client talks to it.
    assert.ok(
      afterRestart === oldSum || afterRestart === newSum,
      `after the restart of vdrep serve the replica is ${point}: a sealed journal was left unapplied (${seen}); vdrep serve must replay it at startup`,
    )
  })

  async function changeAndStartPush(name: string): Promise<{d: SshDisk; t: RunningTracker; oldSum: string; pushing: ChildProcess; result: Promise<CliResult>}> {
    const d = await c.newDisk(name, 64 * MiB)
    const oldSum = await sha256(d.replica)
    const t = await c.track(d)
    // 16 MiB changed (256 blocks), shipped at 4 MiB/s: about 4 s on the wire.
    await qemuIo(d.uri, [...Array.from({length: 4}, (_, i) => `write -P ${0x61 + i} ${(8 + i * 8) * MiB} ${4 * MiB}`), 'flush'])
    const pushing = c.startVdrep(['push', d.disk, '--compress', 'none', '--bwlimit', '4M'])
    const result = collect(pushing)
    const journal = `${d.replica}.vdrep-journal`
    await waitFor('a part of the bundle in the journal', async () => ((await fs.stat(journal).catch(() => undefined))?.size ?? 0) >= 2 * MiB, 30_000, 10)
    return {d, t, oldSum, pushing, result}
  }

  async function nothingLost(d: SshDisk, oldSum: string): Promise<void> {
    await waitFor(
      'the blocks to go back to the change record',
      async () => {
        const s = await status(d.disk)
        // A push that failed (exit 7) is shown as such until a sync succeeds; a killed one left no record.
        return s.inflightBlocks === 0 && (s.state === 'OK' || s.state === 'Push failed')
      },
      20_000,
      50,
    )
    const s = await status(d.disk)
    assert.equal(s.pendingBlocks, 256, 'the blocks of the failed push are pending again')
    await waitFor('the receiver to drop the partial journal', async () => !(await exists(`${d.replica}.vdrep-journal`)), 20_000, 50)
    assert.equal(await sha256(d.replica), oldSum, 'the replica is still at the old point')
    const next = await pushJson(d.disk)
    assert.equal(next.mode, 'delta')
    assert.equal(next.blocks, 256)
    assert.ok(await cmpEqual(d.disk, d.replica))
    const after = await status(d.disk)
    assert.equal(after.pendingBlocks, 0)
    assert.equal(after.state, 'OK', 'a success clears a failed attempt')
  }

  it('kill -9 of the client mid-bundle: nothing lost, the next push ships the blocks and ends equal', async () => {
    const {d, t, oldSum, pushing, result} = await changeAndStartPush('ckill')
    pushing.kill('SIGKILL')
    const res = await result
    assert.equal(res.signal, 'SIGKILL')
    await nothingLost(d, oldSum)
    await c.untrack(t)
  })

  it('the SSH connection cut mid-bundle: exit 7 with a clear message, nothing lost, the next push ends equal', async () => {
    const {d, t, oldSum, result} = await changeAndStartPush('cut')
    assert.ok((await c.sshd.killSessions()) > 0)
    const res = await result
    assert.equal(res.code, 7, res.stdout + res.stderr)
    assert.match(res.stderr, /ssh connection to .* was cut|closed the connection/)
    await nothingLost(d, oldSum)
    await c.untrack(t)
  })

  it("a replica changed behind vdrep's back (a failover by hand): DIVERGED, exit 11, the replica kept; --discard-replica-changes falls back to a full sync and says why", async () => {
    const d = await c.newDisk('tamper', 32 * MiB)
    const t = await c.track(d)
    await qemuIo(d.uri, ['write -P 0x71 0 131072'])
    await sleep(20)
    const fh = await fs.open(d.replica, 'r+')
    await fh.write(Buffer.from('tampered'), 0, 8, 7 * BS)
    await fh.close()
    const kept = await fs.readFile(d.replica)
    for (const args of [
      ['push', d.disk, '--no-fallback'],
      ['push', d.disk],
    ]) {
      const r = await c.vdrep(args)
      assert.equal(r.code, 11, `${args.join(' ')}: ${r.stdout}${r.stderr}`)
      assert.match(r.stderr, /written outside vdrep since its last commit/)
      assert.deepEqual(await fs.readFile(d.replica), kept, `${args.join(' ')} wrote nothing`)
    }
    assert.equal((await c.vdrep(['status', d.disk, '--check'])).code, 11)
    const line = await c.vdrep(['push', d.disk, '--discard-replica-changes'])
    assert.equal(line.code, 0, line.stderr)
    assert.equal(line.stdout.trim().split('\n').length, 1)
    assert.match(line.stdout, /full sync instead \(the replica was written outside vdrep/)
    assert.ok(await cmpEqual(d.disk, d.replica))
    await qemuIo(d.uri, ['write -P 0x72 65536 4096'])
    const back = await pushJson(d.disk)
    assert.equal(back.mode, 'delta', 'after the full sync, deltas again')
    assert.ok(await cmpEqual(d.disk, d.replica))
    await c.untrack(t)
  })

  it("a deleted .psf: push says how to recover; after init again the replica is another source's (exit 10, kept) until handed over, then a full sync that says why", async () => {
    const d = await c.newDisk('nopsf', 32 * MiB)
    const t = await c.track(d)
    await qemuIo(d.uri, ['write -P 0x73 0 65536'])
    await c.untrack(t)
    await fs.rm(`${d.disk}.psf`)
    const r = await c.vdrep(['push', d.disk])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /no state file/)
    assert.equal((await c.init(d.disk, d.replica)).code, 0)
    const kept = await fs.readFile(d.replica)
    const foreign = await c.vdrep(['push', d.disk])
    assert.equal(foreign.code, 10, foreign.stdout + foreign.stderr)
    assert.match(foreign.stderr, /belongs to another source/)
    assert.deepEqual(await fs.readFile(d.replica), kept)
    const line = await c.vdrep(['push', d.disk, '--take-over-replica'])
    assert.equal(line.code, 0, line.stderr)
    assert.match(line.stdout, /full sync instead \(no full sync has completed since init\)/)
    assert.ok(await cmpEqual(d.disk, d.replica))
  })

  it('a disk grown while its tracker was stopped: --scan refuses; push grows the record, checks the old part locally and sends a delta; tracking resumes', async () => {
    const d = await c.newDisk('grow', 32 * MiB)
    let t = await c.track(d)
    await qemuIo(d.uri, ['write -P 0x74 0 65536'])
    await c.untrack(t)
    await fs.truncate(d.disk, 40 * MiB)
    const fh = await fs.open(d.disk, 'r+')
    await fh.write(Buffer.alloc(BS, 0x75), 0, BS, 36 * MiB)
    await fh.close()
    const scan = await c.vdrep(['track', d.disk, '--scan'])
    assert.equal(scan.code, 4, scan.stderr)
    assert.match(scan.stderr, /the disk is 41943040 bytes but the \.psf was made for 33554432/)
    const out = await pushJson(d.disk)
    assert.equal(out.mode, 'delta', JSON.stringify(out))
    assert.match(out.verified?.reasons ?? '', /the disk was written while no tracker ran/)
    assert.equal(out.verified?.blocksScanned, 40 * 16, 'every block of the grown disk was checked')
    // The grow marks the old last block and the 128 new ones (the written one among them).
    assert.equal(out.verified?.blocksNewlyMarked, 0, `nothing unmarked changed: ${JSON.stringify(out)}`)
    assert.equal(out.blocks, 130, 'block 0, the old last block and the 128 new ones')
    assert.equal((await fs.stat(d.replica)).size, 40 * MiB)
    assert.ok(await cmpEqual(d.disk, d.replica))
    t = await c.track(d)
    await qemuIo(d.uri, [`write -P 0x76 ${39 * MiB} 65536`])
    const back = await pushJson(d.disk)
    assert.equal(back.mode, 'delta')
    assert.equal(back.blocks, 1)
    assert.ok(await cmpEqual(d.disk, d.replica))
    await c.untrack(t)
  })

  it('two pushes at once: the second exits 3 at once, the first completes', async () => {
    const d = await c.newDisk('lock', 32 * MiB)
    const t = await c.track(d)
    await qemuIo(d.uri, [`write -P 0x77 0 ${16 * MiB}`]) // 256 blocks: about 4 s at 4 MiB/s
    const first = c.startVdrep(['push', d.disk, '--compress', 'none', '--bwlimit', '4M'])
    const firstDone = collect(first)
    await waitFor(
      'the first push to hold the lock',
      async () => /^pid \d+, push/.test(await fs.readFile(`${d.disk}.vdrep.lock`, 'utf8').catch(() => '')),
      20_000,
      10,
    )
    const started = performance.now()
    const second = await c.vdrep(['push', d.disk])
    assert.equal(second.code, 3, second.stderr)
    assert.match(second.stderr, new RegExp(`already working on .*pid ${first.pid}|pid ${first.pid}.*already working on`))
    assert.ok(performance.now() - started < 5_000, 'refused at once')
    assert.equal(first.exitCode, null, 'the first push was still running when the second was refused')
    const r = await firstDone
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /sequence 1 committed, 256 blocks/)
    assert.ok(await cmpEqual(d.disk, d.replica))
    await c.untrack(t)
  })

  it('status --check exits 6 once the RPO has passed, 0 after a push over SSH', async () => {
    const d = await c.newDisk('rpo', 32 * MiB)
    const fresh = await c.vdrep(['status', d.disk, '--check'])
    assert.equal(fresh.code, 0, fresh.stdout + fresh.stderr)
    const psf = await PsfFile.open(`${d.disk}.psf`)
    await psf.updateHeader({lastSyncMs: Date.now() - 16 * 60_000}) // RPO 15m: as if 16 minutes passed
    await psf.close()
    const late = await c.vdrep(['status', d.disk, '--check', '--json'])
    assert.equal(late.code, 6, late.stdout + late.stderr)
    const row = json<{disks: StatusRow[]}>(late).disks[0]!
    assert.equal(row.state, 'RPO violation')
    assert.equal(row.rpoViolated, true)
    const text = await c.vdrep(['status', d.disk, '--check'])
    assert.equal(text.code, 6)
    assert.match(text.stdout, /RPO violation/)
    const due = await pushJson(d.disk, '--if-due')
    assert.equal(due.mode, 'delta', 'an overdue disk is due')
    assert.equal((await c.vdrep(['status', d.disk, '--check'])).code, 0, 'the push brought it back within the RPO')
  })
})
