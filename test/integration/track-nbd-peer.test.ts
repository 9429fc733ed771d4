// `vdrep track --nbd 127.0.0.1:PORT`: NBD has no authentication and a loopback port is open to
// every local user, so the tracker serves a TCP connection only when the socket at its other
// end belongs to the tracker's own uid (or root). Another local user's qemu-io and nbdinfo get
// nothing: no read, no write, the disk and the change record untouched.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {makeMixedDisk, tempDir} from '../helpers/disks.js'
import {run, runOk} from '../core/tracker/nbd/harness.js'
import {bitmapBlocks, blocksOf, initDisk, MiB, startTracker, type RunningTracker} from '../core/tracker/tracker-helpers.js'
import {ensureUser} from '../helpers/users.js'

const OTHER_USER = 'vdreptest'
const BS = 64 * 1024

describe("vdrep track over TCP: only the tracker's own user is served", function () {
  this.timeout(120_000)
  let dir: string
  let disk: string
  let tracker: RunningTracker | undefined

  before(async function () {
    if (process.getuid?.() !== 0) this.skip() // needs root to run a client as another user
    if (!ensureUser(OTHER_USER)) this.skip()
  })
  beforeEach(async () => {
    dir = await tempDir('vdrep-nbdpeer-')
    disk = path.join(dir, 'vm.img')
    await makeMixedDisk(disk, 8 * MiB, 'peer', MiB)
    await initDisk(disk, path.join(dir, 'replica.img'))
  })
  afterEach(async () => {
    if (tracker && tracker.child.exitCode === null && tracker.child.signalCode === null) await tracker.stop('SIGKILL')
    tracker = undefined
    await fs.rm(dir, {recursive: true, force: true})
  })

  const asOther = (cmd: string, args: string[]) => run('runuser', ['-u', OTHER_USER, '--', cmd, ...args], 30_000)

  it("another local user's qemu-io and nbdinfo are refused; the owner reads and writes", async () => {
    tracker = await startTracker(disk, ['--nbd', '127.0.0.1:0'])
    const port = Number(/on 127\.0\.0\.1:(\d+)/.exec(tracker.line)?.[1])
    assert.ok(port > 0, tracker.line)
    const uri = `nbd://127.0.0.1:${port}/vm.img`
    const before = await fs.readFile(disk)

    const write = await asOther('qemu-io', ['-f', 'raw', uri, '-c', 'write -P 0x66 0 65536'])
    assert.notEqual(write.code, 0, `another user wrote the disk:\n${write.stdout}\n${write.stderr}`)
    const read = await asOther('qemu-io', ['-f', 'raw', '-r', uri, '-c', 'read 0 4096'])
    assert.notEqual(read.code, 0, `another user read the disk:\n${read.stdout}\n${read.stderr}`)
    const info = await asOther('nbdinfo', [uri])
    assert.notEqual(info.code, 0, `another user saw the export:\n${info.stdout}\n${info.stderr}`)

    // The owner (here root, the tracker's own uid) is served as before.
    await runOk('qemu-io', ['-f', 'raw', uri, '-c', 'read 0 4096', '-c', 'write -P 0x77 1048576 4096'])
    await runOk('nbdinfo', [uri])
    const r = await tracker.stop('SIGTERM')
    tracker = undefined
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /nbd: refused a connection from 127\.0\.0\.1:\d+: uid \d+ may not use this export \(only uid 0 may\)/)
    const after = await fs.readFile(disk)
    assert.ok(after.subarray(0, 65536).equals(before.subarray(0, 65536)), 'the refused write reached the disk')
    assert.deepEqual(await bitmapBlocks(disk), blocksOf(1048576, 4096, BS), "only the owner's write is recorded")
  })
})
