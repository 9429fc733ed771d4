// A push or full sync killed with kill -9 records no outcome, so its attempt is marked as it
// starts (status/attempt-running.ts): `status` then says the last attempt failed
// (ATTEMPT_INTERRUPTED, `--check` exit 1, the Prometheus failure gauge) until a sync succeeds,
// a second killed attempt counts as the second failure in a row, and an attempt that is alive
// but stopped is never reported as killed.
import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import type {ChildProcess} from 'node:child_process'
import {json, startVdrep, vdrep} from '../helpers/cli.js'
import {makeMixedDisk, scribbleBlocks, tempDir} from '../helpers/disks.js'

const MiB = 1 << 20

interface Row {
  state: string
  reason: string | null
  lastAttemptFailed: boolean
  lastAttempt: {kind: string; ok: boolean; errorCode: string | null; failuresInRow: number} | null
}

async function statusRow(disk: string): Promise<Row> {
  return json<{disks: Row[]}>(await vdrep(['status', disk, '--json'])).disks[0]
}

/** Waits until the child's marker is there (the sync holds the disk and started). */
async function untilRunning(disk: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const mark = await fs.readFile(`${disk}.vdrep-running`, 'utf8').catch(() => '')
    if (mark.includes(`"pid":${child.pid},`)) return
    if (child.exitCode !== null) throw new Error(`the sync exited (${child.exitCode}) before it started`)
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('the attempt never marked itself running')
}

async function killed(child: ChildProcess): Promise<void> {
  const gone = new Promise((r) => child.once('exit', r))
  child.kill('SIGKILL')
  await gone
}

describe('a killed push or full sync is a failed attempt in status', function () {
  this.timeout(120_000)
  let dir: string
  let disk: string

  before(async () => {
    dir = await tempDir('vdrep-killed-')
    disk = path.join(dir, 'vm.img')
    await makeMixedDisk(disk, 24 * MiB, 'killed')
    assert.equal((await vdrep(['init', disk, '--to', path.join(dir, 'replica.img')])).code, 0)
  })
  after(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('a full sync killed with kill -9: status reports it, --check fails, the next sync clears it', async () => {
    const child = startVdrep(['fullsync', disk, '--bwlimit', '1M', '--compress', 'none'])
    await untilRunning(disk, child)
    // Alive (even stopped) is never "killed".
    child.kill('SIGSTOP')
    const alive = await statusRow(disk)
    assert.notEqual(alive.lastAttempt?.errorCode, 'ATTEMPT_INTERRUPTED', JSON.stringify(alive))
    child.kill('SIGCONT')
    await killed(child)

    const row = await statusRow(disk)
    assert.equal(row.lastAttemptFailed, true, JSON.stringify(row))
    assert.equal(row.lastAttempt?.errorCode, 'ATTEMPT_INTERRUPTED')
    assert.equal(row.lastAttempt?.kind, 'fullsync')
    assert.equal(row.lastAttempt?.failuresInRow, 1)
    assert.match(row.reason ?? '', /ended without recording an outcome/)
    assert.equal((await vdrep(['status', disk, '--check'])).code, 1)
    const metrics = (await vdrep(['status', disk, '--prometheus'])).stdout
    assert.match(metrics, /vdrep_last_attempt_failed\{[^}]*\} 1/)

    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    const after = await statusRow(disk)
    assert.equal(after.lastAttemptFailed, false, JSON.stringify(after))
    assert.equal(after.lastAttempt?.ok, true)
    assert.equal(existsSync(`${disk}.vdrep-running`), false, 'the marker goes with the recorded outcome')
  })

  it('two pushes killed in a row count as two failures; a push that is not due marks nothing', async () => {
    for (let round = 1; round <= 2; round++) {
      await scribbleBlocks(disk, 65536, 160, `round-${round}`)
      const child = startVdrep(['push', disk, '--bwlimit', '1M', '--compress', 'none'])
      await untilRunning(disk, child)
      await killed(child)
      const row = await statusRow(disk)
      assert.equal(row.lastAttempt?.errorCode, 'ATTEMPT_INTERRUPTED', JSON.stringify(row))
      assert.equal(row.lastAttempt?.kind, 'push')
      assert.equal(row.lastAttempt?.failuresInRow, round)
    }
    assert.equal((await vdrep(['push', disk])).code, 0)
    const before = (await statusRow(disk)).lastAttempt
    assert.equal(before?.failuresInRow, 0)
    const skipped = await vdrep(['push', disk, '--if-due', '--json'])
    assert.equal(skipped.code, 0)
    assert.equal(JSON.parse(skipped.stdout).mode, 'skipped', skipped.stdout)
    assert.equal(existsSync(`${disk}.vdrep-running`), false)
    // A push that is not due is no attempt: the last attempt shown is still the one before.
    assert.deepEqual((await statusRow(disk)).lastAttempt, before)
  })
})
