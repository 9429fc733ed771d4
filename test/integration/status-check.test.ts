// `status --check` is for monitoring: it exits 0 only when every disk is healthy. Each case of
// "not healthy" below exited 0 before.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {PsfFile} from '../../src/core/psf/psf-file.js'
import {json, vdrep, VDREP_BIN, collect, type CliResult} from '../helpers/cli.js'
import {makeMixedDisk, tempDir} from '../helpers/disks.js'
import {startTracker, type RunningTracker} from '../core/tracker/tracker-helpers.js'
import {ensureUser} from '../helpers/users.js'

const MiB = 1 << 20
const OTHER_USER = 'vdreptest'

interface Row {
  state: string
  reason: string | null
  rpoViolated: boolean
}

describe('vdrep status --check: non-zero for everything that is not healthy', function () {
  this.timeout(60_000)
  let dir: string
  let disk: string
  let replica: string
  let tracker: RunningTracker | undefined

  beforeEach(async () => {
    dir = await tempDir('vdrep-check-')
    disk = path.join(dir, 'vm.img')
    replica = path.join(dir, 'replica.img')
    await makeMixedDisk(disk, 4 * MiB)
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
  })
  afterEach(async () => {
    if (tracker && tracker.child.exitCode === null && tracker.child.signalCode === null) await tracker.stop('SIGKILL')
    tracker = undefined
    await fs.rm(dir, {recursive: true, force: true})
  })

  async function check(): Promise<{r: CliResult; row: Row}> {
    const r = await vdrep(['status', disk, '--check', '--json'])
    return {r, row: json<{disks: Row[]}>(r).disks[0]}
  }

  async function fullsync() {
    const r = await vdrep(['fullsync', disk])
    assert.equal(r.code, 0, r.stderr)
  }

  it('healthy after a full sync: 0', async () => {
    await fullsync()
    const {r} = await check()
    assert.equal(r.code, 0, r.stdout)
  })

  it('no disks found: 1', async () => {
    const empty = path.join(dir, 'empty')
    await fs.mkdir(empty)
    const r = await vdrep(['status', '--check'], {cwd: empty})
    assert.equal(r.code, 1, r.stdout + r.stderr)
    assert.match(r.stdout, /no disks/)
  })

  it('a disk never synced: 6', async () => {
    const {r, row} = await check()
    assert.equal(r.code, 6, r.stdout)
    assert.equal(row.state, 'Full sync needed')
    assert.equal(row.rpoViolated, true)
  })

  it('a corrupt .psf: 4; an unreadable one: 1', async function () {
    await fullsync()
    const psf = `${disk}.psf`
    const good = await fs.readFile(psf)
    const flipped = Buffer.from(good)
    flipped[40] ^= 0xff
    flipped[4096 + 40] ^= 0xff
    await fs.writeFile(psf, flipped)
    const corrupt = await check()
    assert.equal(corrupt.r.code, 4, corrupt.r.stdout)
    assert.equal(corrupt.row.state, 'Full sync needed')
    await fs.writeFile(psf, good)
    // Unreadable: run as another user, who may read the disk but not the 0600 .psf.
    if (process.getuid?.() !== 0) this.skip()
    if (!ensureUser(OTHER_USER)) this.skip()
    await fs.chmod(dir, 0o755)
    await fs.chmod(disk, 0o644)
    await fs.chmod(psf, 0o600)
    const r = await collect(
      spawn('runuser', ['-u', OTHER_USER, '--', process.execPath, VDREP_BIN, 'status', disk, '--check', '--json'], {stdio: ['ignore', 'pipe', 'pipe']}),
    )
    assert.equal(r.code, 1, r.stdout + r.stderr)
    const row = json<{disks: Row[]}>(r).disks[0]
    assert.equal(row.state, 'Error')
    assert.match(row.reason ?? '', /cannot be used: cannot open/)
  })

  it('a tracker that died (killed -9, the .psf records no clean stop): 1, while a live one is 0', async () => {
    await fullsync()
    tracker = await startTracker(disk, ['--nbd', `unix:${path.join(dir, 'nbd.sock')}`])
    const live = await check()
    assert.equal(live.r.code, 0, live.r.stdout)
    assert.equal(live.row.state, 'OK')
    await tracker.stop('SIGKILL')
    tracker = undefined
    const dead = await check()
    assert.equal(dead.r.code, 1, dead.r.stdout)
    assert.equal(dead.row.state, 'Error')
    assert.match(dead.row.reason ?? '', /a tracker was running .* but none answers/)
  })

  it('the disk written while no tracker ran: 1 (a check against the block hash index is pending), and 0 after the push that ran it', async () => {
    await fullsync()
    await new Promise((r) => setTimeout(r, 20))
    const fh = await fs.open(disk, 'r+')
    await fh.write(Buffer.from('changed'), 0, 7, 12345)
    await fh.close()
    const {r, row} = await check()
    assert.equal(r.code, 1, r.stdout)
    assert.equal(row.state, 'Verify pending')
    assert.match(row.reason ?? '', /written while no tracker ran/)
    const push = await vdrep(['push', disk, '--json'])
    assert.equal(push.code, 0, push.stderr)
    assert.equal(json<{mode: string}>(push).mode, 'delta')
    assert.equal((await check()).r.code, 0)
  })

  it('a last sync in the future (the clock went back): 6, and push --if-due runs', async () => {
    await fullsync()
    const psf = await PsfFile.open(`${disk}.psf`)
    await psf.updateHeader({lastSyncMs: Date.now() + 3600_000})
    await psf.close()
    const {r, row} = await check()
    assert.equal(r.code, 6, r.stdout)
    assert.equal(row.state, 'RPO violation')
    assert.match(row.reason ?? '', /in the future \(the clock went back\)/)
    const due = await vdrep(['push', disk, '--if-due', '--json'])
    assert.equal(due.code, 0, due.stderr)
    assert.equal(json<{mode: string}>(due).mode, 'delta', 'the push ran')
    const after = await check()
    assert.equal(after.r.code, 0, after.r.stdout)
  })
})
