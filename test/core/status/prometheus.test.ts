// The exposition text and the last-attempt side file decoder, without a disk: label values
// that would break the format, and side files that are not ours.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {escapeLabelValue, renderPrometheus} from '../../../src/core/status/prometheus.js'
import fsp from 'node:fs/promises'
import {decodeLastAttempt, encodeLastAttempt, readLastAttempt, recordAttempt, type LastAttempt} from '../../../src/core/status/last-attempt.js'
import {LockError, TransportError} from '../../../src/core/errors.js'
import {tempDir} from '../../helpers/disks.js'
import {emptyRow} from '../../../src/core/status/row.js'

describe('status metrics: Prometheus text', () => {
  it('escapes backslash, double quote and newline in label values', () => {
    assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd')
  })

  it('a hostile disk name still gives a valid exposition (promtool)', function () {
    if (spawnSync('promtool', ['--version']).status !== 0) this.skip() // scripts/test-setup.sh installs it
    const row = {
      ...emptyRow('/vm/we"ird\\name\nx.img'),
      target: 'u@h:/r/"x"',
      state: 'OK' as const,
      rpoSeconds: 900,
      ageSeconds: 3,
      lastSyncMs: 1_700_000_000_000,
    }
    const text = renderPrometheus([row, emptyRow('/vm/b.img')])
    const r = spawnSync('promtool', ['check', 'metrics'], {input: text, encoding: 'utf8'})
    assert.equal(r.status, 0, r.stdout + r.stderr)
    assert.match(text, /vdrep_up\{disk="\/vm\/we\\"ird\\\\name\\nx.img",target="u@h:\/r\/\\"x\\""\} 1/)
    assert.match(text, /vdrep_up\{disk="\/vm\/b.img",target=""\} 0/)
    assert.doesNotMatch(text, /vdrep_replica_age_seconds\{disk="\/vm\/b.img"/, 'an unknown age is left out, not 0')
  })

  it('a disk of a consistency group carries a group label (promtool accepts the mix)', function () {
    if (spawnSync('promtool', ['--version']).status !== 0) this.skip()
    const text = renderPrometheus([{...emptyRow('/vm/db-data.img'), target: '/r/d.img', group: 'db', state: 'OK' as const}, emptyRow('/vm/web.img')])
    assert.match(text, /vdrep_up\{disk="\/vm\/db-data.img",target="\/r\/d.img",group="db"\} 1/)
    assert.match(text, /vdrep_up\{disk="\/vm\/web.img",target=""\} 0/)
    const r = spawnSync('promtool', ['check', 'metrics'], {input: text, encoding: 'utf8'})
    assert.equal(r.status, 0, r.stdout + r.stderr)
  })
})

describe('last attempt side file', () => {
  const good: LastAttempt = {kind: 'push', atMs: 1_700_000_000_000, ok: false, errorCode: 'TRANSPORT', errorMessage: 'cut', lastOkMs: null, failuresInRow: 3}

  it('round-trips', () => {
    assert.deepEqual(decodeLastAttempt(encodeLastAttempt(good).toString()), good)
  })

  it('rejects what vdrep did not write', () => {
    const enc = (o: object) => JSON.stringify({magic: 'vdrep-last', version: 1, ...good, ...o})
    for (const bad of [
      '',
      'not json',
      '[]',
      'null',
      JSON.stringify({...good}),
      enc({version: 2}),
      enc({magic: 'x'}),
      enc({kind: 'other'}),
      enc({atMs: -1}),
      enc({atMs: 1.5}),
      enc({ok: true}),
      enc({ok: true, errorCode: null, failuresInRow: 2}),
      enc({errorMessage: 'x'.repeat(5000)}),
      enc({failuresInRow: -1}),
      enc({lastOkMs: 'yesterday'}),
    ])
      assert.equal(decodeLastAttempt(bad), null, bad.slice(0, 80))
  })
})

describe('recordAttempt', () => {
  it('a lock refusal or a missing record is no attempt; failures count until a success', async () => {
    const dir = await tempDir('vdrep-attempt-')
    const disk = `${dir}/d.img`
    await recordAttempt(disk, 'push', {ok: false, error: new TransportError('SSH_CONNECT', 'refused')})
    assert.equal(await readLastAttempt(disk), null, 'no .psf: no stray side file')
    await fsp.writeFile(`${disk}.psf`, '')
    await recordAttempt(disk, 'push', {ok: false, error: new LockError('held')})
    assert.equal(await readLastAttempt(disk), null, 'another push holds the lock: not an attempt of ours')
    await recordAttempt(disk, 'push', {ok: false, error: new TransportError('SSH_CONNECT', 'refused')}, {now: 1000})
    await recordAttempt(disk, 'push', {ok: false, error: new Error('boom')}, {now: 2000})
    const two = await readLastAttempt(disk)
    assert.equal(two?.failuresInRow, 2)
    assert.equal(two?.errorMessage, 'boom')
    await recordAttempt(disk, 'fullsync', {ok: true}, {now: 3000})
    assert.deepEqual(await readLastAttempt(disk), {
      kind: 'fullsync',
      atMs: 3000,
      ok: true,
      errorCode: null,
      errorMessage: null,
      lastOkMs: 3000,
      failuresInRow: 0,
    })
    await fsp.rm(dir, {recursive: true, force: true})
  })
})
