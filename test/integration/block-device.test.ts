// Block devices as the source: real loop devices through the real binary. The state (the .psf,
// the disk lock, the control socket, the copy-on-write file) lives in the state folder
// (VDREP_STATE_DIR here, so no test writes /var/lib/vdrep), never in /dev; sizes come from the
// device; a running tracker holds the device exclusively (a mounted device is refused, a mount
// fails while it runs). The replica side is block-device-replica.test.ts.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, vdrep} from '../helpers/cli.js'
import {seededBytes, tempDir} from '../helpers/disks.js'
import {attachLoop, detachAll, leftInDev, requireLoopDevices, runOrThrow} from '../helpers/loop-devices.js'
import {runOk} from '../core/tracker/nbd/harness.js'
import {startTracker, type RunningTracker} from '../core/tracker/tracker-helpers.js'

const MiB = 1 << 20
const SIZE = 32 * MiB

describe('block devices as the source (loop devices, CLI)', function () {
  this.timeout(120_000)
  let dir: string
  let state: string
  let env: NodeJS.ProcessEnv
  let tracker: RunningTracker | undefined
  let mnt: string

  before(function () {
    requireLoopDevices(this)
  })

  beforeEach(async () => {
    dir = await tempDir('vdrep-blockdev-')
    state = path.join(dir, 'state')
    mnt = path.join(dir, 'mnt')
    await fs.mkdir(mnt)
    env = {VDREP_STATE_DIR: state}
  })

  afterEach(async () => {
    if (tracker && tracker.child.exitCode === null && tracker.child.signalCode === null) await tracker.stop('SIGKILL')
    tracker = undefined
    spawnSync('umount', [mnt])
    detachAll()
    await fs.rm(dir, {recursive: true, force: true})
  })

  const cli = (args: string[]) => vdrep(args, {env})
  const ok = async (args: string[]) => {
    const r = await cli(args)
    assert.equal(r.code, 0, `vdrep ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`)
    return r
  }
  const sameBytes = async (a: string, b: string, len: number) => {
    const [x, y] = await Promise.all([a, b].map(async (p) => (await fs.readFile(p)).subarray(0, len)))
    assert.ok(x.equals(y), `${a} and ${b} differ in their first ${len} bytes`)
  }

  it('init, track (qemu-io through the export), fullsync, push: the replica equals the device; all state in the state folder, nothing in /dev', async () => {
    const dev = await attachLoop(path.join(dir, 'src.img'), SIZE, seededBytes('blockdev-src', 4 * MiB))
    const replica = path.join(dir, 'replica.img')
    const init = json<{psf: string; diskSize: number; cron: string}>(await ok(['init', dev, '--to', replica, '--json']))
    // Sizes from the device (fstat says 0), and the record named by the device's path under the state folder.
    assert.equal(init.diskSize, SIZE)
    assert.equal(init.psf, path.join(state, `${dev}.psf`))
    assert.ok(init.cron.includes(`--state-dir ${state}`), init.cron)
    await fs.access(init.psf)
    assert.deepEqual(await leftInDev(dev), [])

    const sock = path.join(dir, 'nbd.sock')
    tracker = await startTracker(dev, ['--nbd', `unix:${sock}`], env)
    assert.ok(tracker.line.includes(path.join(state, 'dev')), `control socket in the state folder: ${tracker.line}`)
    const uri = `nbd+unix:///${path.basename(dev)}?socket=${sock}`
    await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 1M 512k', uri])
    await ok(['fullsync', dev])
    await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x3c 9M 192k', '-c', 'write -z 2M 64k', uri])
    const push = await ok(['push', dev])
    assert.match(push.stdout, /committed, 4 blocks/, push.stdout)
    const status = json<{disks: Array<{state: string; tracking: boolean}>}>(await ok(['status', dev, '--json']))
    assert.equal(status.disks[0].state, 'OK')
    assert.equal(status.disks[0].tracking, true)
    const stopped = await tracker.stop('SIGTERM')
    assert.equal(stopped.code, 0, stopped.stderr)
    await sameBytes(dev, replica, SIZE)
    assert.deepEqual(await leftInDev(dev), [])
    // The record, the last attempt (status shows a failing push) and the disk lock: all in the state folder.
    assert.deepEqual((await fs.readdir(path.join(state, 'dev'))).sort(), [
      `${path.basename(dev)}.psf`,
      `${path.basename(dev)}.vdrep-last`,
      `${path.basename(dev)}.vdrep.lock`,
    ])
  })

  it('track refuses a mounted device (DEVICE_IN_USE, exit 2), and while track runs the device cannot be mounted', async () => {
    const dev = await attachLoop(path.join(dir, 'fs.img'), SIZE)
    runOrThrow('mkfs.ext4', ['-q', '-F', dev])
    await ok(['init', dev, '--to', path.join(dir, 'replica.img')])
    runOrThrow('mount', [dev, mnt])
    const sock = path.join(dir, 'nbd.sock')
    const refused = await cli(['track', dev, '--nbd', `unix:${sock}`, '--json'])
    assert.equal(refused.code, 2, refused.stderr)
    const err = json<{error: string; message: string}>(refused)
    assert.equal(err.error, 'DEVICE_IN_USE')
    assert.ok(err.message.includes(`mounted at ${mnt}`), err.message)
    runOrThrow('umount', [mnt])

    tracker = await startTracker(dev, ['--nbd', `unix:${sock}`], env)
    const mount = spawnSync('mount', [dev, mnt], {encoding: 'utf8'})
    assert.notEqual(mount.status, 0, 'the mount must fail while the tracker holds the device')
    const stopped = await tracker.stop('SIGTERM')
    assert.equal(stopped.code, 0, stopped.stderr)
    // Released with the tracker: the file system mounts again.
    runOrThrow('mount', [dev, mnt])
  })

  it('fullsync; mount; write a file; umount; push: the replica equals the device', async () => {
    const dev = await attachLoop(path.join(dir, 'fs.img'), SIZE)
    runOrThrow('mkfs.ext4', ['-q', '-F', dev])
    const replica = path.join(dir, 'replica.img')
    await ok(['init', dev, '--to', replica])
    await ok(['fullsync', dev])
    runOrThrow('mount', [dev, mnt])
    await fs.writeFile(path.join(mnt, 'written-through-the-mount'), seededBytes('through the mount', 3 * MiB))
    runOrThrow('umount', [mnt])
    // The device node's mtime and ctime did not move: only a check of the blocks can find this.
    const push = JSON.parse((await ok(['push', dev, '--json', '--no-fallback'])).stdout) as {mode: string; verified?: {blocksNewlyMarked: number}}
    assert.equal(push.mode, 'delta', 'a local check, then a delta: not a full sync')
    assert.ok((push.verified?.blocksNewlyMarked ?? 0) >= 48, `the 3 MiB written through the mount were found: ${JSON.stringify(push.verified)}`)
    await sameBytes(dev, replica, SIZE)
    assert.deepEqual(await leftInDev(dev), [])
  })

  // A tracker started on a block device after a full sync checks the blocks against the index
  // behind its export (BLOCK_DEVICE_UNWATCHED): nothing told it the device was not written.
  it('track after a full sync: starts once the device is verified, and records the writes', async () => {
    const dev = await attachLoop(path.join(dir, 'src.img'), SIZE, seededBytes('blockdev-late', 2 * MiB))
    const replica = path.join(dir, 'replica.img')
    await ok(['init', dev, '--to', replica])
    await ok(['fullsync', dev])
    const sock = path.join(dir, 'nbd.sock')
    tracker = await startTracker(dev, ['--nbd', `unix:${sock}`], env)
    await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x77 4M 128k', `nbd+unix:///${path.basename(dev)}?socket=${sock}`])
    const push = await ok(['push', dev, '--no-fallback'])
    assert.match(push.stdout, /committed, 2 blocks/)
    await tracker.stop('SIGTERM')
    await sameBytes(dev, replica, SIZE)
  })
})
