// `vdrep init` + `vdrep fullsync` to a local-path target, through the real binary.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, startVdrep, collect, vdrep} from '../helpers/cli.js'
import {allocatedBytes, filesEqual, makeMixedDisk, scribbleBlocks, seededBytes, tempDir} from '../helpers/disks.js'

const MiB = 1 << 20
const BS = 64 * 1024

/** Bytes of `file` in the page cache (fincore, util-linux), or undefined without fincore. */
function residentBytes(file: string): number | undefined {
  try {
    return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], {encoding: 'utf8'}).trim())
  } catch {
    return undefined
  }
}

interface SyncJson {
  bytesSent: number
  bytesCompared: number
  blocksDiffering: number
  zeroBytesSkipped: number
  resumedAtBlock: number
  digest: string
}

describe('fullsync to a local replica (CLI)', function () {
  this.timeout(120_000)
  let dir: string
  let disk: string
  let replica: string

  beforeEach(async () => {
    dir = await tempDir()
    disk = path.join(dir, 'vm.img')
    replica = path.join(dir, 'replica', 'vm.img')
    await fs.mkdir(path.dirname(replica))
    await makeMixedDisk(disk, 32 * MiB)
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  async function init(...extra: string[]) {
    const r = await vdrep(['init', disk, '--to', replica, ...extra])
    assert.equal(r.code, 0, r.stderr)
    return r
  }

  it('creates a sparse, equal, 0600 replica on a fresh target and proves it', async () => {
    const r0 = await init()
    assert.match(r0.stdout, /push --if-due/)
    const r = await vdrep(['fullsync', disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<SyncJson>(r)
    assert.ok(await filesEqual(disk, replica), 'replica differs from source')
    assert.equal(out.bytesCompared, 32 * MiB)
    assert.equal(out.zeroBytesSkipped, 16 * MiB, 'zero blocks must travel as run lengths, not data')
    assert.equal(out.bytesSent, 16 * MiB)
    assert.match(out.digest, /^[0-9a-f]{64}$/)
    assert.ok((await allocatedBytes(replica)) < 20 * MiB, 'a half-zero source must give a sparse replica')
    for (const f of [replica, `${replica}.vdrep`, `${disk}.psf`]) assert.equal((await fs.stat(f)).mode & 0o777, 0o600, f)
  })

  it('without a TTY prints exactly one summary line', async () => {
    await init()
    const r = await vdrep(['fullsync', disk])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim().split('\n').length, 1)
    assert.match(r.stdout, /proved/)
    assert.ok(!(r.stdout + r.stderr).includes('\u001b['), 'no colour or bar without a TTY')
  })

  it('sends only the differences to a seed with 1% of blocks changed, nothing to an identical one', async () => {
    await fs.copyFile(disk, replica)
    await init()
    const same = json<SyncJson>(await vdrep(['fullsync', disk, '--json']))
    assert.equal(same.bytesSent, 0)
    const changed = await scribbleBlocks(disk, BS, 5)
    const r = await vdrep(['fullsync', disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<SyncJson>(r)
    assert.equal(out.blocksDiffering, changed.length)
    assert.equal(out.bytesSent, changed.length * BS)
    assert.ok(await filesEqual(disk, replica))
  })

  it('both local carriers (this thread, a worker thread) send the same blocks and prove the same digest', async () => {
    await init()
    const withCarrier = (carrier: string) => ({env: {...process.env, VDREP_LOCAL_RECEIVER: carrier}})
    const fresh: SyncJson[] = []
    for (const carrier of ['worker', 'inline']) {
      await fs.rm(replica, {force: true})
      await fs.rm(`${replica}.vdrep`, {force: true})
      const r = await vdrep(['fullsync', disk, '--json'], withCarrier(carrier))
      assert.equal(r.code, 0, `${carrier}: ${r.stderr}`)
      fresh.push(json<SyncJson>(r))
      // --verbose says where the receiver ran (--json keeps stderr quiet, so a second, no-op sync).
      const v = await vdrep(['fullsync', disk, '--verbose'], withCarrier(carrier))
      assert.equal(v.code, 0, `${carrier}: ${v.stderr}`)
      assert.match(
        v.stderr,
        carrier === 'worker' ? /local receiver for .*: in a worker thread/ : /local receiver for .*: on this thread/,
        `${carrier}: the receiver ran elsewhere`,
      )
      assert.ok(await filesEqual(disk, replica), `${carrier}: replica differs from source`)
    }
    assert.equal(fresh[0].bytesSent, 16 * MiB)
    assert.equal(fresh[1].bytesSent, fresh[0].bytesSent)
    assert.equal(fresh[1].digest, fresh[0].digest, 'both carriers prove the same digest')
    for (const carrier of ['worker', 'inline']) {
      const changed = await scribbleBlocks(disk, BS, 3, `carrier-${carrier}`)
      const seed = json<SyncJson>(await vdrep(['fullsync', disk, '--json'], withCarrier(carrier)))
      assert.equal(seed.blocksDiffering, changed.length, carrier)
      assert.ok(await filesEqual(disk, replica), `${carrier}: replica differs from source after the seed sync`)
    }
  })

  it('with and without the addon (thread-pool or JS-thread reads and checksums) it sends the same blocks and proves the same digest', async () => {
    await init()
    const runs: SyncJson[] = []
    for (const noNative of ['0', '1', '0']) {
      await fs.rm(replica, {force: true})
      await fs.rm(`${replica}.vdrep`, {force: true})
      const r = await vdrep(['fullsync', disk, '--json'], {env: {...process.env, VDREP_NO_NATIVE: noNative}})
      assert.equal(r.code, 0, `VDREP_NO_NATIVE=${noNative}: ${r.stderr}`)
      runs.push(json<SyncJson>(r))
      assert.ok(await filesEqual(disk, replica), `VDREP_NO_NATIVE=${noNative}: replica differs from source`)
    }
    for (const r of runs.slice(1)) {
      assert.equal(r.digest, runs[0].digest, 'the addon and the JS path prove the same digest')
      assert.equal(r.bytesSent, runs[0].bytesSent)
    }
    // A seed compared by one path and written by the other: nothing differs.
    const again = json<SyncJson>(await vdrep(['fullsync', disk, '--json'], {env: {...process.env, VDREP_NO_NATIVE: '1'}}))
    assert.equal(again.bytesSent, 0)
    assert.equal(again.digest, runs[0].digest)
  })

  it('with and without mapped checksums (VDREP_NO_MMAP) a seed sync sends the same blocks and proves the same digest', async () => {
    await init()
    const first = await vdrep(['fullsync', disk, '--json'])
    assert.equal(first.code, 0, first.stderr)
    const results: SyncJson[] = []
    for (const noMmap of ['0', '1']) {
      // The same blocks changed each time: the replica goes back to the old bytes in between.
      const oldBlocks = await fs.readFile(replica)
      const changed = await scribbleBlocks(disk, BS, 4, 'mmap-seed')
      // The replica put back by hand in between moved on without vdrep: the user's flag says to overwrite it.
      const r = await vdrep(['fullsync', disk, '--json', '--discard-replica-changes'], {env: {...process.env, VDREP_NO_MMAP: noMmap}})
      assert.equal(r.code, 0, `VDREP_NO_MMAP=${noMmap}: ${r.stderr}`)
      const out = json<SyncJson>(r)
      assert.equal(out.blocksDiffering, changed.length, `VDREP_NO_MMAP=${noMmap}`)
      assert.ok(await filesEqual(disk, replica), `VDREP_NO_MMAP=${noMmap}: replica differs from source`)
      results.push(out)
      await fs.writeFile(replica, oldBlocks)
    }
    assert.equal(results[1].digest, results[0].digest)
    assert.equal(results[1].bytesSent, results[0].bytesSent)
  })

  it('never reads the holes of a sparse source or seed (first sync of an identical sparse seed)', async function () {
    // A buffered read of a hole fills the page cache with zero pages: the first full sync of a
    // sparse 4 GiB disk onto its sparse seed spent ~5x the time of the next ones doing that,
    // on both ends. Holes must be skipped (SEEK_DATA), and a zero run punched into the replica
    // proved from its extent map, not read back. The page cache shows what was read.
    const sparse = path.join(dir, 'sparse.img')
    const fh = await fs.open(sparse, 'w')
    await fh.truncate(64 * MiB)
    for (let off = 0, i = 0; off < 64 * MiB; off += 4 * MiB, i++) await fh.write(seededBytes(`sparse:${i}`, MiB), 0, MiB, off)
    await fh.close()
    disk = sparse
    execFileSync('cp', ['--sparse=always', sparse, replica])
    // The seed also holds 2 MiB of data where the source has a hole: one zero run to punch.
    const seed = await fs.open(replica, 'r+')
    await seed.write(seededBytes('stale', 2 * MiB), 0, 2 * MiB, 6 * MiB)
    await seed.close()
    execFileSync('sync', [sparse, replica])
    const before = {source: residentBytes(sparse), replica: residentBytes(replica), allocated: await allocatedBytes(replica)}
    if (before.source === undefined || before.replica === undefined) this.skip()
    await init()
    const r = await vdrep(['fullsync', disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<SyncJson>(r)
    assert.equal(out.bytesSent, 0)
    assert.equal(out.zeroBytesSkipped, 46 * MiB)
    assert.equal((out as SyncJson & {blocksZeroed: number}).blocksZeroed, (2 * MiB) / BS)
    const after = {source: residentBytes(sparse) as number, replica: residentBytes(replica) as number, allocated: await allocatedBytes(replica)}
    // Both files now hold 16 MiB of data and 48 MiB of holes: more than the data (and some
    // readahead slack) in the page cache means holes were read.
    assert.ok(after.source <= 17 * MiB, `the source's page cache went from ${before.source} to ${after.source} bytes: its holes were read`)
    assert.ok(
      after.replica <= 17 * MiB,
      `the replica's page cache went from ${before.replica} to ${after.replica} bytes: its holes (or the punched zero run) were read`,
    )
    assert.ok(after.allocated <= before.allocated - 2 * MiB, `the replica's allocation went from ${before.allocated} to ${after.allocated} bytes`)
    assert.ok(await filesEqual(disk, replica))
    const again = json<SyncJson>(await vdrep(['fullsync', disk, '--json']))
    assert.equal(again.bytesSent, 0)
  })

  it('a replica block written behind its back: refused as DIVERGED (exit 11, nothing written); with --discard-replica-changes found and repaired', async () => {
    await init()
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    const fh = await fs.open(replica, 'r+')
    await fh.write(Buffer.from('bit rot'), 0, 7, 3 * BS + 100)
    await fh.close()
    const kept = await fs.readFile(replica)
    const refused = await vdrep(['fullsync', disk])
    assert.equal(refused.code, 11, refused.stdout + refused.stderr)
    assert.deepEqual(await fs.readFile(replica), kept)
    const out = json<SyncJson>(await vdrep(['fullsync', disk, '--json', '--discard-replica-changes']))
    assert.equal(out.blocksDiffering, 1)
    assert.ok(await filesEqual(disk, replica))
  })

  it('zeroes replica blocks that became zero on the source', async () => {
    await init()
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    const fh = await fs.open(disk, 'r+')
    await fh.write(Buffer.alloc(2 * BS), 0, 2 * BS, 0)
    await fh.close()
    const out = json<SyncJson>(await vdrep(['fullsync', disk, '--json']))
    assert.equal(out.bytesSent, 0)
    assert.ok(await filesEqual(disk, replica))
  })

  it('resumes after kill -9 of the client mid-sync without resending what landed', async () => {
    await makeMixedDisk(disk, 64 * MiB, 'resume')
    await init()
    const child = startVdrep(['fullsync', disk, '--bwlimit', '16M', '--checkpoint-bytes', '4M'])
    const done = collect(child)
    const statePath = `${replica}.vdrep`
    for (let i = 0; i < 400; i++) {
      await new Promise((r) => setTimeout(r, 50))
      const st = await fs.readFile(statePath).catch(() => undefined)
      if (st && /"resumeBlock":([1-9]\d{2,})/.test(st.toString())) break
    }
    child.kill('SIGKILL')
    const killed = await done
    assert.equal(killed.signal, 'SIGKILL', 'the sync finished before it could be killed')
    const state = JSON.parse((await fs.readFile(statePath)).subarray(20).toString()) as {complete: boolean; resumeBlock: number}
    assert.equal(state.complete, false, 'an interrupted replica is marked incomplete')
    assert.ok(state.resumeBlock > 0)
    const r = await vdrep(['fullsync', disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<SyncJson>(r)
    assert.ok(out.resumedAtBlock >= state.resumeBlock, `resumed at ${out.resumedAtBlock}, state said ${state.resumeBlock}`)
    assert.ok(out.bytesSent < 32 * MiB, `resent ${out.bytesSent} bytes; what landed must not travel again`)
    const plain = await vdrep(['fullsync', disk])
    assert.equal(plain.code, 0)
    assert.ok(await filesEqual(disk, replica))
  })

  it('grows the replica when the source grew', async () => {
    await init()
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    await fs.appendFile(disk, Buffer.alloc(3 * BS + 17, 7))
    const r = await vdrep(['fullsync', disk])
    assert.equal(r.code, 0, r.stderr)
    assert.ok(await filesEqual(disk, replica))
    const again = json<SyncJson>(await vdrep(['fullsync', disk, '--json']))
    assert.equal(again.bytesSent, 0, 'the .psf was re-laid out for the new size')
  })

  it('refuses a replica larger than the source unless --truncate-replica', async () => {
    await fs.writeFile(replica, Buffer.alloc(40 * MiB, 1))
    await init()
    const r = await vdrep(['fullsync', disk])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /larger than the source/)
    assert.equal((await fs.stat(replica)).size, 40 * MiB, 'nothing written')
    assert.equal((await vdrep(['fullsync', disk, '--truncate-replica'])).code, 0)
    assert.ok(await filesEqual(disk, replica))
  })
})
