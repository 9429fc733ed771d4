// A moved ctime alone (chmod, chown, a new link) does not stop `vdrep track` from starting: the
// tracker first checks the disk against the block hash index of the last sync (a local read),
// marks what differs, then serves. A write whose mtime was put back is found by that check.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, vdrep} from '../helpers/cli.js'
import {makeMixedDisk, seededBytes, tempDir} from '../helpers/disks.js'
import {runOk} from '../core/tracker/nbd/harness.js'
import {bitmapBlocks, initDisk, MiB, startTracker, type RunningTracker} from '../core/tracker/tracker-helpers.js'

const BS = 64 * 1024

describe('vdrep track after chmod: verified, not refused', function () {
  this.timeout(120_000)
  let dir: string
  let disk: string
  let sock: string
  let tracker: RunningTracker | undefined

  beforeEach(async () => {
    dir = await tempDir('vdrep-ctime-')
    disk = path.join(dir, 'vm.img')
    sock = path.join(dir, 'nbd.sock')
    await makeMixedDisk(disk, 8 * MiB, 'ctime', MiB)
    await initDisk(disk, path.join(dir, 'replica.img'))
    const sync = await vdrep(['fullsync', disk])
    assert.equal(sync.code, 0, sync.stderr)
  })
  afterEach(async () => {
    if (tracker && tracker.child.exitCode === null && tracker.child.signalCode === null) await tracker.stop('SIGKILL')
    tracker = undefined
    await fs.rm(dir, {recursive: true, force: true})
  })

  async function stop(): Promise<string> {
    const r = await (tracker as RunningTracker).stop('SIGTERM')
    tracker = undefined
    assert.equal(r.code, 0, r.stderr)
    return r.stderr
  }

  it('chmod on the disk: the tracker checks the disk, finds nothing changed, and serves; the next push is a delta', async () => {
    await new Promise((r) => setTimeout(r, 20))
    await fs.chmod(disk, 0o640)
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    assert.match(tracker.line, /; 0 blocks pending/)
    const stderr = await stop()
    assert.match(stderr, /only the disk's ctime changed .*checking every block against the block hash index/)
    assert.match(stderr, /0 changed and not yet marked/)
    assert.deepEqual(await bitmapBlocks(disk), [])
    const push = await vdrep(['push', disk, '--json'])
    assert.equal(push.code, 0, push.stderr)
    assert.equal(json<{mode: string}>(push).mode, 'delta', 'the record is trusted again')
  })

  it('a write whose mtime was put back (ctime moved): the check finds and marks its block', async () => {
    const ref = path.join(dir, 'ref')
    await fs.writeFile(ref, '')
    await runOk('touch', ['-r', disk, ref])
    await new Promise((r) => setTimeout(r, 20))
    const fh = await fs.open(disk, 'r+')
    await fh.write(seededBytes('sneaky', 4096), 0, 4096, 3 * BS + 100)
    await fh.close()
    await runOk('touch', ['-m', '-r', ref, disk]) // the mtime as it was; the ctime moves
    tracker = await startTracker(disk, ['--nbd', `unix:${sock}`])
    assert.match(tracker.line, /; 1 blocks pending/)
    const stderr = await stop()
    assert.match(stderr, /1 changed and not yet marked, now marked/)
    assert.deepEqual(await bitmapBlocks(disk), [3])
  })

  it('a changed mtime still refuses (exit 4) and asks for a scan, as before', async () => {
    await new Promise((r) => setTimeout(r, 20))
    const fh = await fs.open(disk, 'r+')
    await fh.write(Buffer.from('x'), 0, 1, 5)
    await fh.close()
    const r = await vdrep(['track', disk, '--nbd', `unix:${sock}`])
    assert.equal(r.code, 4, r.stderr)
    assert.match(r.stderr, /written while no tracker ran .*mtime changed/)
  })
})
