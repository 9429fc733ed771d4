// Tests of src/core/status/attempt-running.ts: the marker's decoder takes only what markRunning
// writes; a marker is "interrupted" only when its process is gone or its pid now names another
// process (a reused pid), never while its process lives.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {
  clearRunning,
  decodeRunning,
  encodeRunning,
  interruptedAttempt,
  markRunning,
  processStartOf,
  runningPathFor,
} from '../../../src/core/status/attempt-running.js'
import {tempDir} from '../../helpers/disks.js'

describe('attempt-running', () => {
  let dir: string
  let disk: string
  beforeEach(async () => {
    dir = await tempDir('vdrep-running-')
    disk = path.join(dir, 'd.img')
    await fs.writeFile(disk, '')
    await fs.writeFile(`${disk}.psf`, '') // markRunning writes only beside a record
  })
  afterEach(() => fs.rm(dir, {recursive: true, force: true}))

  it('decodes only its own format', () => {
    const good = {kind: 'push' as const, sinceMs: 1_700_000_000_000, pid: 42, procStart: 'b:1'}
    assert.deepEqual(decodeRunning(encodeRunning(good).toString()), good)
    for (const bad of ['', 'null', '[]', '{"magic":"vdrep-running","version":2}', JSON.stringify({magic: 'vdrep-last', version: 1, ...good})])
      assert.equal(decodeRunning(bad), null, bad)
    for (const o of [{kind: 'scan'}, {pid: 0}, {pid: 1.5}, {sinceMs: -1}, {procStart: 7}])
      assert.equal(decodeRunning(JSON.stringify({magic: 'vdrep-running', version: 1, ...good, ...o})), null, JSON.stringify(o))
  })

  it('names a process by its start: stable for a living one, null for none', async () => {
    const me = await processStartOf(process.pid)
    assert.ok(me && /^[0-9a-f-]+:\d+$/.test(me), String(me))
    assert.equal(await processStartOf(process.pid), me)
    const dead = spawnSync('true').pid as number
    assert.equal(await processStartOf(dead), null)
  })

  it('a living attempt is not interrupted; a dead one or a reused pid is; clear removes only its own', async () => {
    await markRunning(disk, 'push')
    assert.equal(await interruptedAttempt(disk), null, 'this process lives')
    const dead = spawnSync('true').pid as number
    await fs.writeFile(runningPathFor(disk), encodeRunning({kind: 'fullsync', sinceMs: 5, pid: dead, procStart: 'x:1'}))
    assert.equal((await interruptedAttempt(disk))?.pid, dead)
    await clearRunning(disk)
    assert.ok((await interruptedAttempt(disk)) !== null, "another process's marker stays")
    await fs.writeFile(runningPathFor(disk), encodeRunning({kind: 'push', sinceMs: 5, pid: process.pid, procStart: 'another-boot:1'}))
    assert.equal((await interruptedAttempt(disk))?.procStart, 'another-boot:1', 'a reused pid does not keep a dead attempt alive')
    await markRunning(disk, 'push')
    await clearRunning(disk)
    await assert.rejects(fs.stat(runningPathFor(disk)), {code: 'ENOENT'})
  })
})
