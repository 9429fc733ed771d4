// --timeout against a receiver that stops answering (issue 20): `vdrep serve` stopped with
// SIGSTOP (a frozen process, a hung host) in the middle of a push and of a full sync. The client
// must give up within its timeout (exit 13, PEER_TIMEOUT naming host and phase), release the
// disk's lock (a second push is not LOCKED), hand the push's blocks back to the change record,
// and leave the replica at the old point; after SIGCONT the next run converges with nothing
// lost. And the other side of it: a receiver that is slow but alive (an apply made to take
// longer than the timeout, VDREP_TEST_SLOW_APPLY_MS) keeps the client waiting with keepalives.
//
// Every case waits out a real 10 s timeout (or a 15 s apply), and the 10 s floor is a product
// rule, so the cases run at the same time, each on its own sshd and receiver (one case's SIGSTOP
// or slow apply never touches another's): before() starts them, and each it() awaits its own
// case and reports its own failure. The file takes about as long as its longest case plus the
// full sync's, which runs alone after the others (see before()).
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import net from 'node:net'
import {collect, json} from '../helpers/cli.js'
import {cmpEqual, exists, MiB, qemuIo, sha256, SshCycle, waitFor} from '../helpers/cycle.js'
import type {PushResult} from '../../src/core/delta/push.js'
import {readReplicaState} from '../../src/core/receiver/replica-state.js'

interface StatusRow {
  state: string
  pendingBlocks: number
  inflightBlocks: number
}

interface ErrorJson {
  error: string
  message: string
}

const TIMEOUT_S = 10
/** Login, the client's close, a loaded machine: how much later than the timeout the client may exit. */
const SLACK_MS = 12_000

describe('--timeout: a receiver stopped with SIGSTOP, and keepalives through a slow apply (real sshd)', function () {
  this.timeout(240_000)
  const cycles: SshCycle[] = []
  /** Receivers a case stopped with SIGSTOP: after() continues them, whatever happened. */
  const stopped = new Set<SshCycle>()
  const cases = new Map<string, Promise<void>>()

  const stopServe = (c: SshCycle) => {
    c.serve.child.kill('SIGSTOP')
    stopped.add(c)
  }
  const continueServe = (c: SshCycle) => {
    if (stopped.delete(c)) c.serve.child.kill('SIGCONT')
  }
  const newCycle = async (): Promise<SshCycle> => {
    const c = await SshCycle.start()
    cycles.push(c)
    return c
  }
  /** Starts a case on its own cycle; its it() awaits the promise (a no-op catch keeps an early failure from being unhandled until then). */
  const start = (name: string, cycle: Promise<SshCycle>, run: (c: SshCycle) => Promise<void>) => {
    const p = cycle.then(run)
    p.catch(() => {})
    cases.set(name, p)
  }
  const result = (name: string) => cases.get(name)!

  before(async () => {
    // The slow receiver gets its environment at spawn: it starts alone, before any other vdrep
    // process of this file runs, so none of them inherits it.
    process.env.VDREP_TEST_SLOW_APPLY_MS = '15000'
    let slow: SshCycle
    try {
      slow = await newCycle()
    } finally {
      delete process.env.VDREP_TEST_SLOW_APPLY_MS
    }
    start('push', newCycle(), stoppedMidPush)
    start('mute', newCycle(), muteHost)
    start('slow', Promise.resolve(slow), slowApply)
    // The full sync's case runs alone once the others are done: run beside them, its client once
    // stayed stuck 200+ s past the 10 s timeout (the defect of 8e1ba8d, which a loaded machine
    // brings back); here it keeps the conditions it always had until that is fixed.
    const others = Promise.allSettled(cases.values())
    start('fullsync', others.then(newCycle), stoppedMidFullsync)
  })
  after(async () => {
    await Promise.allSettled(cases.values())
    for (const c of cycles) continueServe(c)
    await Promise.allSettled(cycles.map((c) => c.stop()))
  })

  async function status(c: SshCycle, disk: string): Promise<StatusRow> {
    const r = await c.vdrep(['status', disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    return json<{disks: StatusRow[]}>(r).disks[0]!
  }

  it('SIGSTOP mid-push: exit 13 within the timeout, lock free, blocks back, replica at the old point; after SIGCONT the next push ends equal', () =>
    result('push'))
  async function stoppedMidPush(c: SshCycle): Promise<void> {
    const d = await c.newDisk('stopped', 64 * MiB)
    const oldSum = await sha256(d.replica)
    const t = await c.track(d)
    // 16 MiB changed (256 blocks), shipped raw (a pattern compresses to nothing) at 4 MiB/s: about 4 s on the wire.
    await qemuIo(d.uri, [...Array.from({length: 4}, (_, i) => `write -P ${0x61 + i} ${(8 + i * 8) * MiB} ${4 * MiB}`), 'flush'])
    const result = collect(c.startVdrep(['push', d.disk, '--bwlimit', '4M', '--compress', 'none', '--timeout', `${TIMEOUT_S}s`, '--json']))
    const journal = `${d.replica}.vdrep-journal`
    await waitFor('a part of the bundle in the journal', async () => ((await fs.stat(journal).catch(() => undefined))?.size ?? 0) >= 2 * MiB, 30_000, 10)
    stopServe(c)
    const t0 = performance.now()
    const res = await result
    const took = performance.now() - t0
    console.log(`      push exited ${res.code} ${(took / 1000).toFixed(1)} s after SIGSTOP (timeout ${TIMEOUT_S} s)`)
    assert.equal(res.code, 13, res.stdout + res.stderr)
    assert.ok(took >= TIMEOUT_S * 1000 - 500 && took < TIMEOUT_S * 1000 + SLACK_MS, `exited ${took} ms after the stop`)
    const err = json<ErrorJson>(res)
    assert.equal(err.error, 'PEER_TIMEOUT')
    // Where it stood depends on how much of the bundle the kernel's and sshd's buffers took before they filled.
    assert.match(err.message, /127\.0\.0\.1.* sent nothing for 10s while (blocks were being sent|it committed the bundle)/)

    // The blocks went back to the change record, and the lock is free: a second push, with the
    // receiver still stopped, times out at its hello instead of finding the disk LOCKED.
    const s = await status(c, d.disk)
    assert.equal(s.inflightBlocks, 0)
    assert.equal(s.pendingBlocks, 256, 'the blocks of the abandoned push are pending again')
    assert.equal(s.state, 'Push failed')
    const again = await c.vdrep(['push', d.disk, '--timeout', `${TIMEOUT_S}s`, '--json'])
    assert.equal(again.code, 13, again.stdout + again.stderr)
    assert.match(json<ErrorJson>(again).message, /after the hello/)

    continueServe(c)
    // The receiver sees the tunnel gone and drops the partial journal: the replica never moved.
    await waitFor('the receiver to drop the partial journal', async () => !(await exists(journal)), 30_000, 50)
    assert.equal(await sha256(d.replica), oldSum, 'the replica is still at the old point')
    const next = await c.vdrep(['push', d.disk, '--json'])
    assert.equal(next.code, 0, next.stderr)
    const out = json<PushResult>(next)
    assert.equal(out.mode, 'delta')
    assert.equal(out.blocks, 256)
    assert.ok(await cmpEqual(d.disk, d.replica), 'the push after SIGCONT did not converge')
    assert.equal((await status(c, d.disk)).state, 'OK')
    await c.untrack(t)
  }

  it('SIGSTOP mid-full-sync: exit 13 within the timeout; after SIGCONT the full sync resumes and ends equal', () => result('fullsync'))
  async function stoppedMidFullsync(c: SshCycle): Promise<void> {
    const d = await c.newDisk('fstopped', 64 * MiB, {fullsync: false})
    const result = collect(
      c.startVdrep(['fullsync', d.disk, '--bwlimit', '4M', '--compress', 'none', '--checkpoint-bytes', '4M', '--timeout', `${TIMEOUT_S}s`, '--json']),
    )
    // Stopped once a checkpoint is durable on the replica (its state records where to resume),
    // not merely once 4 MiB are written: before that there is nothing to resume from.
    await waitFor('a durable checkpoint on the replica', async () => ((await readReplicaState(d.replica)).state?.resumeBlock ?? 0) > 0, 30_000, 10)
    stopServe(c)
    const t0 = performance.now()
    const res = await result
    const took = performance.now() - t0
    console.log(`      fullsync exited ${res.code} ${(took / 1000).toFixed(1)} s after SIGSTOP (timeout ${TIMEOUT_S} s)`)
    assert.equal(res.code, 13, res.stdout + res.stderr)
    assert.ok(took < TIMEOUT_S * 1000 + SLACK_MS, `exited ${took} ms after the stop`)
    assert.equal(json<ErrorJson>(res).error, 'PEER_TIMEOUT')
    continueServe(c)
    const next = await c.vdrep(['fullsync', d.disk])
    assert.equal(next.code, 0, next.stderr)
    assert.match(next.stdout, /resumed at/)
    assert.ok(await cmpEqual(d.disk, d.replica))
  }

  it('a host that accepts TCP but never speaks SSH: the login times out (exit 13, SSH_TIMEOUT) within the timeout init recorded', () => result('mute'))
  async function muteHost(c: SshCycle): Promise<void> {
    const mute = net.createServer(() => {}) // accepts, says nothing
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r))
    try {
      const port = (mute.address() as net.AddressInfo).port
      const d = await c.newDisk('mute', 4 * MiB, {fullsync: false})
      const i = await c.vdrep([
        'init',
        d.disk,
        '--to',
        `${c.sshd.user}@127.0.0.1:${port}:${d.replica}`,
        '--force',
        '--no-check',
        '--known-hosts',
        c.sshd.knownHostsFile,
        '--identity',
        c.sshd.clientKey.path,
        '--timeout',
        `${TIMEOUT_S}s`,
      ])
      assert.equal(i.code, 0, i.stderr)
      const t0 = performance.now()
      // No --timeout here: the one recorded by init applies.
      const r = await c.vdrep(['fullsync', d.disk, '--json'])
      const took = performance.now() - t0
      assert.equal(r.code, 13, r.stdout + r.stderr)
      assert.equal(json<ErrorJson>(r).error, 'SSH_TIMEOUT')
      assert.ok(took >= TIMEOUT_S * 1000 - 500 && took < TIMEOUT_S * 1000 + SLACK_MS, `gave up after ${took} ms`)
    } finally {
      mute.close()
    }
  }

  it('a receiver slow but alive (an apply 15 s longer than usual) under --timeout 10s: keepalives carry the push to its commit', () => result('slow'))
  async function slowApply(c: SshCycle): Promise<void> {
    const d = await c.newDisk('slow', 16 * MiB)
    const t = await c.track(d)
    await qemuIo(d.uri, [`write -P 0x5a ${MiB} ${2 * MiB}`, 'flush'])
    const t0 = performance.now()
    const r = await c.vdrep(['push', d.disk, '--timeout', `${TIMEOUT_S}s`, '--json'])
    const took = performance.now() - t0
    console.log(`      push with a 15 s apply under --timeout ${TIMEOUT_S}s: exit ${r.code} in ${(took / 1000).toFixed(1)} s`)
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.ok(took >= 15_000, 'the apply really took longer than the timeout')
    assert.equal(json<PushResult>(r).mode, 'delta')
    assert.ok(await cmpEqual(d.disk, d.replica))
    await c.untrack(t)
  }
})
