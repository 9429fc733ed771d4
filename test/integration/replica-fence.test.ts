// Issue 18, case 6 (and the replica side of case 1): a replica knows its source and its
// history. Two disks with one target: the second is refused (exit 10), the replica intact,
// until it is handed over. A replica written after its last commit (a failover done by hand,
// through qemu-io or a plain write) or held open with an OFD lock (qemu-io running on it) is
// refused as DIVERGED (exit 11), push never falls back over it, status shows it; only
// --discard-replica-changes resyncs it. Local targets here; push-ssh.test.ts has the sshd case.
import assert from 'node:assert/strict'
import {execFile, spawn, type ChildProcess} from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {json, vdrep} from '../helpers/cli.js'
import {filesEqual, makeMixedDisk, scribbleBlocks, tempDir} from '../helpers/disks.js'
import {markChanged} from '../helpers/change-record.js'
import type {PushResult} from '../../src/core/delta/push.js'

const MiB = 1 << 20
const BS = 64 * 1024
const run = promisify(execFile)

async function sha(file: string): Promise<string> {
  return crypto
    .createHash('sha256')
    .update(await fs.readFile(file))
    .digest('hex')
}

/** The replica's bytes and its state file, to show that a refusal changed nothing. */
async function snapshot(replica: string): Promise<string> {
  return `${await sha(replica)} ${await sha(`${replica}.vdrep`)}`
}

/** Whether some process holds an OFD lock on `file` (/proc/locks names its inode). */
async function ofdLocked(file: string): Promise<boolean> {
  const ino = (await fs.stat(file)).ino
  const locks = await fs.readFile('/proc/locks', 'utf8')
  return locks.split('\n').some((l) => l.includes('OFDLCK') && l.split(/\s+/).some((f) => f.endsWith(`:${ino}`)))
}

describe('a replica knows its source (issue 18 case 6)', function () {
  this.timeout(120_000)
  let dir: string
  let a: string
  let b: string
  let replica: string

  beforeEach(async () => {
    dir = await tempDir()
    a = path.join(dir, 'a.img')
    b = path.join(dir, 'b.img')
    replica = path.join(dir, 'replica', 'r.img')
    await fs.mkdir(path.dirname(replica))
    await makeMixedDisk(a, 8 * MiB, 'fence-a')
    await makeMixedDisk(b, 8 * MiB, 'fence-b')
    for (const d of [a, b]) assert.equal((await vdrep(['init', d, '--to', replica])).code, 0)
    assert.equal((await vdrep(['fullsync', a])).code, 0)
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('two disks with one target: the second is refused (exit 10), the replica intact; a hand-over is explicit', async () => {
    const before = await snapshot(replica)
    const fsync = await vdrep(['fullsync', b])
    assert.equal(fsync.code, 10, fsync.stdout + fsync.stderr)
    assert.match(fsync.stderr, /belongs to another source/)
    assert.match(fsync.stderr, /--take-over-replica/)
    const push = await vdrep(['push', b])
    assert.equal(push.code, 10, 'push does not fall back to a full sync over it: ' + push.stdout + push.stderr)
    assert.equal(await snapshot(replica), before, 'nothing written')
    assert.ok(await filesEqual(a, replica))
    const st = await vdrep(['status', b, '--json'])
    assert.match(st.stdout, /Foreign replica/)
    assert.equal((await vdrep(['status', b, '--check'])).code, 10)
    // The hand-over: the replica becomes b's, and a is refused from now on.
    const take = await vdrep(['fullsync', b, '--take-over-replica'])
    assert.equal(take.code, 0, take.stderr)
    assert.ok(await filesEqual(b, replica))
    assert.doesNotMatch((await vdrep(['status', b, '--json'])).stdout, /Foreign replica/)
    const back = await vdrep(['push', a])
    assert.equal(back.code, 10, back.stderr)
    assert.ok(await filesEqual(b, replica), 'the replica is still b')
  })

  it('a failover by hand (the replica written through qemu-io after its last commit): DIVERGED (exit 11), never overwritten, shown by status; --discard-replica-changes resyncs', async () => {
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 65536 131072', replica])
    const before = await snapshot(replica)
    await markChanged(a, await scribbleBlocks(a, BS, 3, 'after-failover'))
    for (const args of [
      ['push', a],
      ['push', a, '--no-fallback'],
      ['fullsync', a],
    ]) {
      const r = await vdrep(args)
      assert.equal(r.code, 11, `${args.join(' ')}: ${r.stdout}${r.stderr}`)
      assert.match(r.stderr, /written outside vdrep since its last commit/)
      assert.match(r.stderr, /--discard-replica-changes/)
      assert.equal(await snapshot(replica), before, `${args.join(' ')} wrote nothing`)
    }
    const st = await vdrep(['status', a, '--json'])
    assert.match(st.stdout, /"state": ?"Diverged"/)
    assert.equal((await vdrep(['status', a, '--check'])).code, 11)
    const r = await vdrep(['push', a, '--discard-replica-changes', '--json'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(json<PushResult>(r).mode, 'fullsync')
    assert.ok(await filesEqual(a, replica))
    assert.equal((await vdrep(['status', a, '--check'])).code, 0, 'healthy again')
    await markChanged(a, await scribbleBlocks(a, BS, 2, 'then-deltas'))
    const next = await vdrep(['push', a, '--json'])
    assert.equal(next.code, 0, next.stderr)
    assert.equal(json<PushResult>(next).mode, 'delta', 'deltas again after the resync')
    assert.ok(await filesEqual(a, replica))
  })

  it('a plain write to the replica after its last commit: push exits 11 (no fallback from cron); fullsync --discard-replica-changes resyncs', async () => {
    const fh = await fs.open(replica, 'r+')
    await fh.write(Buffer.from('promoted'), 0, 8, 3 * BS)
    await fh.close()
    const before = await snapshot(replica)
    const r = await vdrep(['push', a])
    assert.equal(r.code, 11, r.stdout + r.stderr)
    assert.equal(await snapshot(replica), before)
    const f = await vdrep(['fullsync', a, '--discard-replica-changes'])
    assert.equal(f.code, 0, f.stderr)
    assert.ok(await filesEqual(a, replica))
  })

  it('a replica open by another program (qemu-io holds its OFD locks): DIVERGED, nothing written; once it is closed, pushes go on', async () => {
    let qemu: ChildProcess | undefined
    try {
      qemu = spawn('qemu-io', ['-f', 'raw', '-c', 'sleep 60000', replica], {stdio: 'ignore'})
      const deadline = Date.now() + 10_000
      while (!(await ofdLocked(replica))) {
        assert.ok(Date.now() < deadline, 'qemu-io took no OFD lock on the replica')
        await new Promise((res) => setTimeout(res, 50))
      }
      const before = await snapshot(replica)
      await markChanged(a, await scribbleBlocks(a, BS, 2, 'while-open'))
      const r = await vdrep(['push', a])
      assert.equal(r.code, 11, r.stdout + r.stderr)
      assert.match(r.stderr, /open by another program/)
      const f = await vdrep(['fullsync', a])
      assert.equal(f.code, 11, f.stdout + f.stderr)
      assert.equal(await snapshot(replica), before, 'nothing written while it is open')
    } finally {
      qemu?.kill('SIGKILL')
    }
    await new Promise((res) => setTimeout(res, 200))
    // Opened, never written: the refusal was about now, not about its history.
    const r = await vdrep(['push', a, '--json'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(json<PushResult>(r).mode, 'delta')
    assert.ok(await filesEqual(a, replica))
  })

  it('a new (missing or empty) replica, and a seed without a state file, are fine', async () => {
    await fs.rm(replica)
    await fs.rm(`${replica}.vdrep`)
    assert.equal((await vdrep(['fullsync', b])).code, 0, 'missing')
    await fs.rm(`${replica}.vdrep`)
    await fs.writeFile(replica, '')
    assert.equal((await vdrep(['fullsync', a])).code, 0, 'empty')
  })
})
