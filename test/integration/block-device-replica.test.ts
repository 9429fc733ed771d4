// A block device as the replica: real loop devices through the real binary, reached as a
// device node under the receiver's root (mknod), as `vdrep serve --root` would see one. The
// device is never truncated: a larger one keeps its bytes past the disk's end, a smaller one
// is refused before anything is written, a mounted one is refused.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import {spawnSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, vdrep} from '../helpers/cli.js'
import {makeMixedDisk, seededBytes, tempDir} from '../helpers/disks.js'
import {attachLoop, detachAll, deviceNodeAt, requireLoopDevices, runOrThrow} from '../helpers/loop-devices.js'

const MiB = 1 << 20
const SIZE = 16 * MiB

describe('block devices as the replica (loop devices, CLI)', function () {
  this.timeout(120_000)
  let dir: string
  let root: string
  let disk: string
  let env: NodeJS.ProcessEnv
  let mnt: string

  before(function () {
    requireLoopDevices(this)
  })

  beforeEach(async () => {
    dir = await tempDir('vdrep-blockdev-replica-')
    root = path.join(dir, 'root')
    mnt = path.join(dir, 'mnt')
    await fs.mkdir(root, {mode: 0o755})
    await fs.mkdir(mnt)
    disk = path.join(dir, 'vm.img')
    await makeMixedDisk(disk, SIZE, 'replica-device', MiB)
    env = {VDREP_STATE_DIR: path.join(dir, 'state')}
  })

  afterEach(async () => {
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
  const sha = async (p: string) =>
    crypto
      .createHash('sha256')
      .update(await fs.readFile(p))
      .digest('hex')

  /** A loop device of `size` bytes filled with 0xee (so zero runs must really be zeroed), as a node under the root. */
  async function deviceReplica(size: number): Promise<{dev: string; node: string}> {
    const dev = await attachLoop(path.join(dir, `replica-${size}.img`), size, Buffer.alloc(size, 0xee))
    const node = path.join(root, 'replica.dev')
    await deviceNodeAt(dev, node)
    return {dev, node}
  }

  it('fullsync and push into a larger device: its first disk-size bytes equal the disk, the rest is untouched', async () => {
    const {dev, node} = await deviceReplica(SIZE + 8 * MiB)
    await ok(['init', disk, '--to', node])
    await ok(['fullsync', disk])
    let bytes = await fs.readFile(dev)
    assert.ok(bytes.subarray(0, SIZE).equals(await fs.readFile(disk)), 'the replica differs after the full sync')
    assert.ok(bytes.subarray(SIZE).equals(Buffer.alloc(8 * MiB, 0xee)), 'the bytes past the disk were written')

    // Data and a 2 MiB zero run (a ZERO entry of the bundle) change; a scan marks them, the push ships a delta.
    const fh = await fs.open(disk, 'r+')
    await fh.write(seededBytes('changed', 3 * 65536), 0, 3 * 65536, 5 * MiB)
    await fh.write(Buffer.alloc(2 * MiB), 0, 2 * MiB, 0)
    await fh.close()
    await ok(['track', disk, '--scan'])
    const push = await ok(['push', disk])
    assert.match(push.stdout, /committed, 19 blocks/, push.stdout) // 3 written + 16 zeroed (the next 1 MiB was zeros already)
    bytes = await fs.readFile(dev)
    assert.ok(bytes.subarray(0, SIZE).equals(await fs.readFile(disk)), 'the replica differs after the push')
    assert.ok(bytes.subarray(SIZE).equals(Buffer.alloc(8 * MiB, 0xee)), 'the bytes past the disk were written by the push')
  })

  it('a device smaller than the disk is refused (REPLICA_DEVICE_TOO_SMALL, exit 2) and left untouched', async () => {
    const {dev, node} = await deviceReplica(SIZE / 2)
    const before = await sha(dev)
    await ok(['init', disk, '--to', node])
    const r = await cli(['fullsync', disk, '--json'])
    assert.equal(r.code, 2, r.stderr)
    assert.equal(json<{error: string}>(r).error, 'REPLICA_DEVICE_TOO_SMALL')
    assert.equal(await sha(dev), before)
    await assert.rejects(fs.access(`${node}.vdrep`), 'no replica state may be written for a refused device')
  })

  it('a mounted device is refused (DEVICE_IN_USE, exit 2) and its file system left as it was', async () => {
    const {dev, node} = await deviceReplica(SIZE + 8 * MiB)
    runOrThrow('mkfs.ext4', ['-q', '-F', dev])
    runOrThrow('mount', [dev, mnt])
    await fs.writeFile(path.join(mnt, 'kept'), 'a file the replica must not overwrite')
    await ok(['init', disk, '--to', node])
    const r = await cli(['fullsync', disk, '--json'])
    assert.equal(r.code, 2, r.stderr)
    assert.equal(json<{error: string}>(r).error, 'DEVICE_IN_USE')
    runOrThrow('umount', [mnt])
    runOrThrow('fsck.ext4', ['-n', dev])
    runOrThrow('mount', [dev, mnt])
    assert.equal(await fs.readFile(path.join(mnt, 'kept'), 'utf8'), 'a file the replica must not overwrite')
  })
})
