// Monitoring (issue 20): every push and full sync records its outcome beside the .psf; `status`
// shows a failing push (and `--check` fails) until a sync succeeds; `--prometheus` and
// `--textfile-dir` give metrics that promtool accepts, for disks in every state a fleet has.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {exitCodeOfCode} from '../../src/core/errors.js'
import {PsfFile} from '../../src/core/psf/psf-file.js'
import {json, vdrep} from '../helpers/cli.js'
import {makeMixedDisk, tempDir} from '../helpers/disks.js'

const MiB = 1 << 20

interface Row {
  disk: string
  state: string
  reason: string | null
  lastAttemptFailed: boolean
  lastAttempt: {ok: boolean; errorCode: string | null; failuresInRow: number} | null
}

const hasPromtool = spawnSync('promtool', ['--version']).status === 0

/** promtool's verdict on a metrics text: '' when clean, its complaints otherwise. */
function promtool(text: string): string {
  const r = spawnSync('promtool', ['check', 'metrics'], {input: text, encoding: 'utf8'})
  assert.equal(r.error, undefined, 'promtool runs')
  return r.status === 0 ? '' : `${r.stdout}${r.stderr}`
}

/** The value of one sample, by metric and disk label. */
function sample(text: string, metric: string, disk: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${metric}{disk="${disk}"`))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

describe('monitoring: last attempt, status --prometheus, --textfile-dir', function () {
  this.timeout(90_000)
  let dir: string
  const disks: Record<'never' | 'ok' | 'late' | 'failing', string> = {never: '', ok: '', late: '', failing: ''}

  async function ok(args: string[]) {
    const r = await vdrep(args)
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
  }

  before(async () => {
    dir = await tempDir('vdrep-mon-')
    for (const k of Object.keys(disks) as (keyof typeof disks)[]) {
      disks[k] = path.join(dir, `${k}.img`)
      await makeMixedDisk(disks[k], 2 * MiB, k)
      await ok(['init', disks[k], '--to', path.join(dir, `${k}-replica.img`), '--rpo', '15m'])
    }
    for (const k of ['ok', 'late', 'failing'] as const) await ok(['fullsync', disks[k]])
    // Past its RPO: the last sync two hours ago.
    const psf = await PsfFile.open(`${disks.late}.psf`)
    await psf.updateHeader({lastSyncMs: Date.now() - 2 * 3600_000})
    await psf.close()
    // A push that fails: the receiver refuses a replica path that is no longer a regular file.
    await fs.rm(path.join(dir, 'failing-replica.img'))
    await fs.mkdir(path.join(dir, 'failing-replica.img'))
    await fs.writeFile(disks.failing, Buffer.from('changed'), {flag: 'r+'})
    for (let i = 0; i < 2; i++) assert.notEqual((await vdrep(['push', disks.failing])).code, 0, 'the push fails')
  })
  after(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('a failed push is recorded and shown, and --check fails with its exit code', async () => {
    const r = await vdrep(['status', disks.failing, '--check', '--json'])
    const row = json<{disks: Row[]}>(r).disks[0]
    assert.equal(row.state, 'Push failed')
    assert.equal(row.lastAttemptFailed, true)
    assert.equal(row.lastAttempt?.errorCode, 'PATH_OUTSIDE_ROOT')
    assert.equal(row.lastAttempt?.failuresInRow, 2)
    assert.match(row.reason ?? '', /the last push failed at .*\(2 failures in a row\).*not a regular file/)
    assert.equal(r.code, exitCodeOfCode('PATH_OUTSIDE_ROOT'), "status --check exits with the failed push's code")
    const table = await vdrep(['status', disks.failing])
    assert.match(table.stdout, /Push failed/)
    assert.match(table.stdout, /PATH_OUTSIDE_ROOT/)
  })

  it('a push that is not due is no attempt; a healthy disk stays healthy', async () => {
    assert.equal((await vdrep(['push', disks.ok, '--if-due'])).code, 0)
    const r = await vdrep(['status', disks.ok, '--check', '--json'])
    assert.equal(r.code, 0, r.stdout)
    const row = json<{disks: Row[]}>(r).disks[0]
    assert.equal(row.lastAttempt?.ok, true, 'the full sync was recorded; the skipped push was not')
  })

  it('promtool accepts the metrics of disks never synced, ok, past RPO and failing', async function () {
    if (!hasPromtool) this.skip() // scripts/test-setup.sh installs the Debian prometheus package
    const r = await vdrep(['status', ...Object.values(disks), '--prometheus'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(promtool(r.stdout), '')
    const t = r.stdout
    assert.equal(sample(t, 'vdrep_last_success_timestamp_seconds', disks.never), 0)
    assert.equal(sample(t, 'vdrep_replica_age_seconds', disks.never), undefined, 'no age for a disk never synced')
    assert.equal(sample(t, 'vdrep_rpo_violated', disks.never), 1)
    assert.equal(sample(t, 'vdrep_full_sync_needed', disks.never), 1)
    assert.equal(sample(t, 'vdrep_rpo_violated', disks.ok), 0)
    assert.equal(sample(t, 'vdrep_up', disks.ok), 1)
    assert.equal(sample(t, 'vdrep_rpo_seconds', disks.ok), 900)
    assert.ok(Math.abs((sample(t, 'vdrep_last_success_timestamp_seconds', disks.ok) ?? 0) - Date.now() / 1000) < 120)
    assert.equal(sample(t, 'vdrep_rpo_violated', disks.late), 1)
    assert.ok((sample(t, 'vdrep_replica_age_seconds', disks.late) ?? 0) >= 7200)
    assert.equal(sample(t, 'vdrep_last_attempt_failed', disks.failing), 1)
    assert.equal(sample(t, 'vdrep_consecutive_failures', disks.failing), 2)
    assert.ok((sample(t, 'vdrep_pending_bytes', disks.failing) ?? 0) > 0)
    assert.ok((sample(t, 'vdrep_last_attempt_timestamp_seconds', disks.failing) ?? 0) > (sample(t, 'vdrep_last_success_timestamp_seconds', disks.failing) ?? 0))
    // One HELP and one TYPE per family, and every family has them.
    const families = t.split('\n').filter((l) => l.startsWith('# TYPE '))
    assert.equal(new Set(families).size, families.length)
    assert.ok(families.length >= 14)
  })

  it('--textfile-dir replaces vdrep.prom atomically: a reader never sees a partial file', async function () {
    const out = path.join(dir, 'textfile')
    await fs.mkdir(out)
    const file = path.join(out, 'vdrep.prom')
    let reading = true
    const seen: string[] = []
    const strays = new Set<string>()
    const reader = (async () => {
      while (reading) {
        const text = await fs.readFile(file, 'utf8').catch(() => null)
        if (text !== null) seen.push(text)
        for (const n of await fs.readdir(out)) if (n.endsWith('.prom') && n !== 'vdrep.prom') strays.add(n)
        await new Promise((r) => setImmediate(r))
      }
    })()
    for (let i = 0; i < 4; i++) {
      const r = await vdrep(['status', ...Object.values(disks), '--textfile-dir', out])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, '', 'prints nothing without --prometheus')
    }
    reading = false
    await reader
    assert.ok(seen.length > 0, 'the reader saw the file')
    const whole = (await fs.readFile(file, 'utf8')).length
    for (const text of seen) {
      assert.ok(text.endsWith('\n') && text.includes('# TYPE vdrep_last_sequence gauge'), 'every read is a whole file')
      assert.ok(Math.abs(text.length - whole) < 64, 'never a truncated one')
    }
    assert.deepEqual([...strays], [], 'no temp file a collector would read (*.prom)')
    assert.equal((await fs.stat(file)).mode & 0o777, 0o644, 'readable by node_exporter')
    if (hasPromtool) assert.equal(promtool(await fs.readFile(file, 'utf8')), '')
  })

  it('a side file vdrep did not write is ignored; a planted symlink is replaced, never followed', async () => {
    const side = `${disks.ok}.vdrep-last`
    await fs.writeFile(side, '{"magic":"vdrep-last","version":1,"kind":"push","ok":false}')
    const r = await vdrep(['status', disks.ok, '--check', '--json'])
    assert.equal(r.code, 0, r.stdout)
    assert.equal(json<{disks: Row[]}>(r).disks[0].lastAttempt, null)
    // Someone who can write the folder points the side file at another file: the next push
    // replaces the link (rename), and the file it pointed at is untouched.
    const victim = path.join(dir, 'victim.txt')
    await fs.writeFile(victim, 'keep me')
    await fs.rm(side)
    await fs.symlink(victim, side)
    await ok(['fullsync', disks.ok])
    assert.equal(await fs.readFile(victim, 'utf8'), 'keep me')
    assert.equal((await fs.lstat(side)).isSymbolicLink(), false)
  })

  it('a success clears the failure', async () => {
    await fs.rm(path.join(dir, 'failing-replica.img'), {recursive: true})
    await ok(['fullsync', disks.failing])
    const r = await vdrep(['status', disks.failing, '--check', '--json'])
    assert.equal(r.code, 0, r.stdout)
    const row = json<{disks: Row[]}>(r).disks[0]
    assert.equal(row.lastAttemptFailed, false)
    assert.notEqual(row.state, 'Push failed')
    assert.equal(row.lastAttempt?.failuresInRow, 0)
  })
})
