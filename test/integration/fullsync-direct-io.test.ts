// The full sync's replica writer with direct I/O (fullsync/direct-writes.ts) and its page-cache
// fallback: both give the exact replica, for odd sizes too (a disk that is no multiple of 4096:
// the tail goes through the page cache), with short zero runs inside a run, punched long ones,
// blocks out of order; a file system that refuses O_DIRECT (tmpfs) falls back and says so; a full
// replica file system fails the write (ENOSPC) on the direct path as on the other. tmpfs takes
// O_DIRECT since Linux 6.6: ramfs is the file system here that refuses it.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {vdrep} from '../helpers/cli.js'
import {filesEqual, seededBytes, tempDir} from '../helpers/disks.js'
import {HashAlgo} from '../../src/core/hash/block-hash.js'
import {PROTOCOL_VERSION} from '../../src/core/protocol/frame.js'
import {SyncMode, type Hello} from '../../src/core/protocol/messages.js'
import {ReplicaFile} from '../../src/core/receiver/replica-file.js'
import {openReplicaWrites} from '../../src/core/fullsync/direct-writes.js'
import {nativeAvailable} from '../../src/core/native/binding.js'
import {alignedBuffer, directWritable} from '../../src/core/native/direct-io.js'

const BS = 64 * 1024
const MiB = 1 << 20

function helloFor(p: string, diskSize: number): Hello {
  return {
    version: PROTOCOL_VERSION,
    mode: SyncMode.FULLSYNC,
    hashAlgo: HashAlgo.XXH3,
    blockSize: BS,
    diskSize,
    replicaId: Buffer.alloc(16, 3),
    flags: 0,
    lastCommit: Buffer.alloc(16),
    nextCommit: Buffer.alloc(16, 1),
    path: p,
  }
}

/**
 * Write `want` (the whole disk) to `file` through the writer as a full sync would: blocks out of
 * order across barriers, zero runs short and long, the odd tail last. Returns the writer's mode.
 */
async function writeDisk(file: string, want: Buffer, logs: string[], aligned = false): Promise<string> {
  const hello = helloFor(file, want.length)
  const replica = await ReplicaFile.open(file, hello)
  try {
    await replica.beginFullsync(want.length, false)
    const writes = await openReplicaWrites(replica, BS, (t) => logs.push(t))
    try {
      const blocks = Math.ceil(want.length / BS)
      const block = (b: number) => want.subarray(b * BS, Math.min(want.length, (b + 1) * BS))
      const isZero = (b: number) => block(b).every((x) => x === 0)
      // The second half first, then the first: no run is contiguous with the one before.
      const order = [
        ...Array.from({length: blocks - Math.floor(blocks / 2)}, (_, i) => Math.floor(blocks / 2) + i),
        ...Array.from({length: Math.floor(blocks / 2)}, (_, i) => i),
      ]
      let barrier: Promise<void> | undefined
      // Page-aligned receive memory (the local client's chunks, the receive pool's lends): the
      // direct writer takes such a block as it is and hands it back only once it is written.
      const arena = aligned ? alignedBuffer(blocks * BS) : undefined
      const releases: Array<{released: () => boolean; views: boolean}> = []
      for (let k = 0; k < order.length; k++) {
        const b = order[k]
        if (isZero(b)) {
          let end = b + 1
          while (k + 1 < order.length && order[k + 1] === end && isZero(end)) {
            end++
            k++
          }
          await writes.zeroRange(b * BS, Math.min(want.length, end * BS) - b * BS)
        } else {
          let released = false
          // A copy, as a receive buffer would be: the writer must be done with it at release.
          const data = arena ? arena.subarray(b * BS, b * BS + block(b).length) : Buffer.from(block(b))
          block(b).copy(data)
          const views = writes.mode === 'direct I/O' && directWritable(data)
          await writes.writeBlock(b, data, () => {
            released = true
            // Reused by the reader at once: a writer that let go before its write was done would write these bytes.
            if (views) data.fill(0xee)
          })
          if (writes.mode === 'direct I/O' && !views) assert.ok(released, 'the direct writer releases the receive buffer once copied')
          releases.push({released: () => released, views})
        }
        if (k % 7 === 0) {
          await barrier
          barrier = writes.barrier()
        }
      }
      await barrier
      await writes.settle()
      assert.ok(
        releases.every((r) => r.released()),
        'every receive buffer is back once settled',
      )
      if (aligned && writes.mode === 'direct I/O')
        assert.ok(
          releases.some((r) => r.views),
          'aligned blocks were written from their own memory',
        )
      return writes.mode
    } finally {
      await writes.close()
    }
  } finally {
    await replica.close()
  }
}

/** A disk of `size` bytes: random runs, a short zero run (2 blocks), a long one (2 MiB), text. */
function mixed(size: number): Buffer {
  const buf = seededBytes(`direct-${size}`, size)
  const fill = (v: number, from: number, to: number) => buf.fill(v, Math.min(from, size), Math.min(to, size))
  fill(0, 1 * BS, 2 * BS) // short: written as zeros inside a run
  fill(0, 8 * BS, 8 * BS + 2 * MiB) // long: punched
  fill(0x41, 50 * BS, 52 * BS)
  return buf
}

describe('full sync: the replica writer, direct I/O and its fallback', function () {
  this.timeout(120_000)
  let dir: string
  const mounts: string[] = []
  beforeEach(async () => {
    dir = await tempDir()
  })
  afterEach(async () => {
    for (const m of mounts.splice(0)) execFileSync('umount', [m], {stdio: 'ignore'})
    await fs.rm(dir, {recursive: true, force: true})
  })

  /** A ramfs: it refuses O_DIRECT (EINVAL at open). */
  async function mountRamfs(): Promise<string> {
    const mnt = path.join(dir, `ramfs-${mounts.length}`)
    await fs.mkdir(mnt)
    execFileSync('mount', ['-t', 'ramfs', '-o', 'mode=0755', 'ramfs', mnt])
    mounts.push(mnt)
    return mnt
  }

  /** A small ext4 file system on a loop device (takes O_DIRECT). */
  async function mountExt4(sizeMiB: number): Promise<string> {
    const img = path.join(dir, `ext4-${mounts.length}.img`)
    const mnt = path.join(dir, `ext4-${mounts.length}`)
    await fs.mkdir(mnt)
    await fs.truncate(img, 0).catch(() => undefined)
    await fs.writeFile(img, Buffer.alloc(0))
    await fs.truncate(img, sizeMiB * MiB)
    execFileSync('mkfs.ext4', ['-q', '-F', img], {stdio: 'ignore'})
    execFileSync('mount', ['-o', 'loop', img, mnt])
    mounts.push(mnt)
    return mnt
  }

  for (const size of [24 * MiB, 24 * MiB + 5 * BS + 1234, 3 * BS + 100]) {
    it(`direct I/O (ext4) and the page cache (ramfs) both give the exact replica: ${size} bytes`, async function () {
      if (!nativeAvailable || process.getuid?.() !== 0) this.skip()
      const want = mixed(size)
      const direct: string[] = []
      const onExt4 = path.join(dir, 'replica.img')
      assert.equal(await writeDisk(onExt4, want, direct), 'direct I/O', direct.join('\n'))
      assert.deepEqual(direct, [])
      assert.ok(want.equals(await fs.readFile(onExt4)), 'the direct replica equals the disk')
      const fromViews = path.join(dir, 'views.img')
      assert.equal(await writeDisk(fromViews, want, direct, true), 'direct I/O')
      assert.ok(want.equals(await fs.readFile(fromViews)), 'the replica written from aligned receive memory (no copy) equals the disk')
      const fallback: string[] = []
      const onRamfs = path.join(await mountRamfs(), 'replica.img')
      assert.equal(await writeDisk(onRamfs, want, fallback), 'page cache')
      assert.match(fallback.join('\n'), /page cache: the file system refuses O_DIRECT \(EINVAL\)/)
      assert.ok(want.equals(await fs.readFile(onRamfs)), 'the page-cache replica equals the disk')
    })
  }

  it('VDREP_NO_DIRECT_IO=1 writes through the page cache and says so', async function () {
    if (!nativeAvailable) this.skip()
    const want = mixed(4 * MiB + 17)
    const logs: string[] = []
    process.env.VDREP_NO_DIRECT_IO = '1'
    try {
      assert.equal(await writeDisk(path.join(dir, 'r.img'), want, logs), 'page cache')
    } finally {
      delete process.env.VDREP_NO_DIRECT_IO
    }
    assert.match(logs.join('\n'), /VDREP_NO_DIRECT_IO=1/)
    assert.ok(want.equals(await fs.readFile(path.join(dir, 'r.img'))))
  })

  it('CLI on ext4 (direct) and ramfs (fallback), odd size: exact, proved replicas; the proof reads what the device holds', async function () {
    if (process.getuid?.() !== 0) this.skip()
    const disk = path.join(dir, 'vm.img')
    await fs.writeFile(disk, mixed(20 * MiB + 3 * BS + 777))
    for (const where of [path.join(dir, 'direct'), await mountRamfs()]) {
      await fs.mkdir(where, {recursive: true})
      const replica = path.join(where, 'vm.img')
      assert.equal((await vdrep(['init', disk, '--to', replica, '--block-size', String(BS), '--force'])).code, 0)
      const r = await vdrep(['fullsync', disk])
      assert.equal(r.code, 0, r.stderr)
      assert.ok(await filesEqual(disk, replica), `replica on ${where} equals the disk`)
    }
  })

  it('a full replica file system on the direct path: exit 9, nothing proved; the ENOSPC of the direct write is the error', async function () {
    if (process.getuid?.() !== 0) this.skip()
    const mnt = await mountExt4(16)
    const disk = path.join(dir, 'vm.img')
    await fs.writeFile(disk, seededBytes('full-direct', 32 * MiB))
    const replica = path.join(mnt, 'vm.img')
    assert.equal((await vdrep(['init', disk, '--to', replica, '--block-size', String(BS)])).code, 0)
    const r = await vdrep(['fullsync', disk])
    assert.equal(r.code, 9, `exit ${r.code}: ${r.stderr}`)
    assert.match(r.stderr, /no space|no room|full/i)
    assert.doesNotMatch(r.stdout, /proved/)
    const logs: string[] = []
    // The same writer straight: the direct write's ENOSPC is the error, not a silent fallback.
    await assert.rejects(writeDisk(path.join(mnt, 'w.img'), seededBytes('w', 32 * MiB), logs), (err: NodeJS.ErrnoException) => err.code === 'ENOSPC')
    assert.deepEqual(logs, [])
  })
})
