// Reading and checksumming a chunk: the addon's thread-pool path (native/read_hash.cc) must
// give exactly the bytes and the checksums the JS path gives, for every algorithm, with holes,
// zero blocks, a short last block and keys; and a failed native read falls back to readAt.
// The mapped path (mapHashRuns: checksums through a mapping, no copy) must give the same
// checksums, and a file that is short or shrinks under the mapping (SIGBUS) must fall back to
// reading, never kill the process; a SIGBUS that is not ours still ends it as before.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import fc from 'fast-check'
import {blockHasher, HASH_LENGTH, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {spawnSync} from 'node:child_process'
import {fileURLToPath} from 'node:url'
import {digestSlots, hashRuns, mapAndHashRuns, readAndHashRuns, sumOf, type ReadableDisk} from '../../../src/core/disk/read-hash.js'
import {findPackageRoot, nativeAvailable} from '../../../src/core/native/binding.js'
import {mapHashRuns, readHashRuns} from '../../../src/core/native/hashing.js'
import {tempDir} from '../../helpers/disks.js'

const BS = 4096
const KEY = Buffer.from('8899aabbccddeeff0011223344556677', 'hex')

async function diskWith(dir: string, bytes: Buffer): Promise<{disk: ReadableDisk; jsDisk: ReadableDisk; close: () => Promise<void>}> {
  const file = path.join(dir, `d-${crypto.randomBytes(4).toString('hex')}.img`)
  await fs.writeFile(file, bytes)
  const fh = await fs.open(file, 'r')
  const readAt = async (buf: Buffer, len: number, pos: number) => {
    const {bytesRead} = await fh.read(buf, 0, len, pos)
    if (bytesRead !== len) throw new Error(`short read at ${pos}`)
    return buf.subarray(0, len)
  }
  return {
    disk: {fd: fh.fd, readAt, directReads: true},
    jsDisk: {fd: fh.fd, readAt, directReads: false},
    close: () => fh.close(),
  }
}

/** Blocks of random data, all-zero blocks and blocks zero but for one byte, in a given order. */
function chunkBytes(kinds: number[], tail: number): Buffer {
  const parts = kinds.map((k) => {
    if (k === 0) return Buffer.alloc(BS)
    if (k === 1) return crypto.randomBytes(BS)
    const b = Buffer.alloc(BS)
    b[BS - 1 - (k % 7)] = 1 // zero but for one byte near the end: not a zero block
    return b
  })
  return Buffer.concat([...parts, crypto.randomBytes(tail)])
}

describe('read and hash a chunk', () => {
  let dir: string
  before(async () => {
    dir = await tempDir('vdrep-read-hash-')
  })
  after(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('the addon is built with readHashRuns here (CI builds it at npm ci)', function () {
    if (!nativeAvailable) this.skip()
    const p = readHashRuns(999999, Buffer.alloc(BS), new Int32Array([0, 1]), BS, BS, 0, KEY, Buffer.alloc(HASH_LENGTH), new Uint8Array(1))
    assert.ok(p, 'readHashRuns is missing from the addon')
    return assert.rejects(p, (err: NodeJS.ErrnoException) => err.code === 'EBADF' && err.syscall === 'read')
  })

  it('gives the same bytes, zero flags and checksums as the JS path, for any runs, holes and a short last block', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({min: 0, max: 5}), {minLength: 1, maxLength: 24}),
        fc.integer({min: 0, max: BS - 1}),
        fc.array(fc.boolean(), {minLength: 25, maxLength: 25}),
        fc.constantFrom(HashAlgo.XXH3, HashAlgo.BLAKE3, HashAlgo.SHA256),
        async (kinds, tail, skip, algo) => {
          const bytes = chunkBytes(kinds, tail)
          const {disk, jsDisk, close} = await diskWith(dir, bytes)
          try {
            const count = Math.ceil(bytes.length / BS)
            // Runs of the blocks not "skipped" (holes as the hole map would report them).
            const runs: Array<[number, number]> = []
            for (let i = 0; i < count; i++) {
              if (skip[i]) continue
              const last = runs[runs.length - 1]
              if (last && last[1] === i) last[1]++
              else runs.push([i, i + 1])
            }
            const hasher = blockHasher(algo, KEY)
            const a = Buffer.alloc(count * BS, 0xee)
            const b = Buffer.alloc(count * BS, 0xee)
            const fast = await readAndHashRuns(disk, hasher, a, runs, 0, bytes.length, BS)
            const slow = await readAndHashRuns(jsDisk, hasher, b, runs, 0, bytes.length, BS)
            assert.deepEqual(fast.zero, slow.zero)
            for (let i = 0; i < count; i++) {
              const inRun = runs.some(([s, e]) => i >= s && i < e)
              const len = Math.min(BS, bytes.length - i * BS)
              if (inRun) assert.ok(a.subarray(i * BS, i * BS + len).equals(bytes.subarray(i * BS, i * BS + len)), `block ${i} bytes`)
              if (!inRun) assert.equal(fast.zero[i], 1, `block ${i} outside the runs counts as zero`)
              if (fast.zero[i] === 1) {
                assert.equal(sumOf(fast, i), undefined, `block ${i} is zero: no checksum`)
                continue
              }
              const expected = hasher.hash(bytes.subarray(i * BS, i * BS + len))
              assert.deepEqual(sumOf(fast, i), expected, `block ${i} sumOf`)
              assert.deepEqual(fast.sums.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH), expected, `block ${i} checksum`)
              assert.deepEqual(slow.sums.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH), expected)
            }
          } finally {
            await close()
          }
        },
      ),
      {numRuns: 60},
    )
  })

  it("reads at the chunk's file offset", async () => {
    const bytes = crypto.randomBytes(8 * BS)
    const {disk, close} = await diskWith(dir, bytes)
    try {
      const hasher = blockHasher(HashAlgo.XXH3, KEY)
      const buf = Buffer.alloc(3 * BS)
      const r = await readAndHashRuns(disk, hasher, buf, [[0, 3]], 5 * BS, 3 * BS, BS)
      assert.ok(buf.equals(bytes.subarray(5 * BS)))
      assert.deepEqual(r.sums.subarray(HASH_LENGTH, 2 * HASH_LENGTH), hasher.hash(bytes.subarray(6 * BS, 7 * BS)))
    } finally {
      await close()
    }
  })

  it('a native read that fails is read again through readAt, whose error is the one seen', async () => {
    const bytes = crypto.randomBytes(4 * BS)
    const {disk, close} = await diskWith(dir, bytes)
    try {
      const hasher = blockHasher(HashAlgo.XXH3, KEY)
      // The file ends inside the run: the native read fails (EOF); readAt says why its way.
      await assert.rejects(readAndHashRuns(disk, hasher, Buffer.alloc(8 * BS), [[0, 8]], 0, 8 * BS, BS), /short read at 0/)
      // A readAt that recovers (a transient error) gives the data.
      let calls = 0
      const flaky: ReadableDisk = {
        fd: 999999,
        directReads: true,
        readAt: async (buf, len, pos) => {
          calls++
          bytes.copy(buf, 0, pos, pos + len)
          return buf.subarray(0, len)
        },
      }
      const r = await readAndHashRuns(flaky, hasher, Buffer.alloc(4 * BS), [[0, 4]], 0, 4 * BS, BS)
      assert.equal(calls, 1)
      assert.deepEqual(r.sums.subarray(0, HASH_LENGTH), hasher.hash(bytes.subarray(0, BS)))
    } finally {
      await close()
    }
  })

  it('the range checks refuse runs outside the chunk before the pool thread writes anything', function () {
    if (!readHashRuns(0, Buffer.alloc(BS), new Int32Array(0), 0, BS, 0, KEY, Buffer.alloc(0), new Uint8Array(0))) this.skip()
    const call =
      (runs: number[], chunkLen = 2 * BS, sums = 2 * HASH_LENGTH) =>
      () =>
        readHashRuns(0, Buffer.alloc(2 * BS), new Int32Array(runs), chunkLen, BS, 0, KEY, Buffer.alloc(sums), new Uint8Array(2))
    assert.throws(call([0, 3]), /inside the chunk/)
    assert.throws(call([1, 1]), /inside the chunk/)
    assert.throws(call([1, 2, 0, 1]), /inside the chunk/)
    assert.throws(call([0, 1], 3 * BS), /chunkLen is out of range/)
    assert.throws(call([0, 1], 2 * BS, HASH_LENGTH), /too small/)
    assert.throws(
      () => readHashRuns(0, Buffer.alloc(BS), new Int32Array([0, 1]), BS, BS, 0, Buffer.alloc(4), Buffer.alloc(HASH_LENGTH), new Uint8Array(1)),
      /seed/,
    )
  })

  it('mapped checksums are the read ones, for any runs, holes, offsets and a short last block', async function () {
    if (!mapHashRuns(0, new Int32Array(0), 0, BS, 0, KEY, Buffer.alloc(0), new Uint8Array(0))) this.skip()
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({min: 0, max: 5}), {minLength: 1, maxLength: 24}),
        fc.integer({min: 0, max: BS - 1}),
        fc.array(fc.boolean(), {minLength: 25, maxLength: 25}),
        fc.integer({min: 0, max: 3}),
        async (kinds, tail, skip, lead) => {
          // `lead` blocks before the chunk: the chunk starts at a file offset, as all but the first do.
          const bytes = Buffer.concat([crypto.randomBytes(lead * BS), chunkBytes(kinds, tail)])
          const {disk, jsDisk, close} = await diskWith(dir, bytes)
          try {
            const chunkLen = bytes.length - lead * BS
            const count = Math.ceil(chunkLen / BS)
            const runs: Array<[number, number]> = []
            for (let i = 0; i < count; i++) {
              if (skip[i]) continue
              const last = runs[runs.length - 1]
              if (last && last[1] === i) last[1]++
              else runs.push([i, i + 1])
            }
            const hasher = blockHasher(HashAlgo.XXH3, KEY)
            const mapped = await mapAndHashRuns(disk, hasher, runs, lead * BS, chunkLen, BS)
            assert.ok(mapped, 'the mapping was made')
            const read = await readAndHashRuns(jsDisk, hasher, Buffer.alloc(count * BS), runs, lead * BS, chunkLen, BS)
            assert.deepEqual(mapped.zero, read.zero)
            for (let i = 0; i < count; i++) assert.deepEqual(sumOf(mapped, i), sumOf(read, i), `block ${i}`)
          } finally {
            await close()
          }
        },
      ),
      {numRuns: 60},
    )
  })

  it('maps only where it can: xxh3, direct reads; other algorithms and fault-injected disks read', async () => {
    const bytes = crypto.randomBytes(4 * BS)
    const {disk, jsDisk, close} = await diskWith(dir, bytes)
    try {
      assert.equal(await mapAndHashRuns(disk, blockHasher(HashAlgo.BLAKE3, KEY), [[0, 4]], 0, 4 * BS, BS), undefined)
      assert.equal(await mapAndHashRuns(jsDisk, blockHasher(HashAlgo.XXH3, KEY), [[0, 4]], 0, 4 * BS, BS), undefined)
      const hasher = blockHasher(HashAlgo.SHA256, KEY)
      let lent = 0
      const r = await hashRuns(disk, hasher, [[0, 4]], 0, 4 * BS, BS, () => (lent++, Buffer.alloc(4 * BS)))
      assert.equal(lent, 1, 'read into the lent buffer')
      assert.deepEqual(sumOf(r, 3), hasher.hash(bytes.subarray(3 * BS)))
    } finally {
      await close()
    }
  })

  it('a file shorter than the runs is not mapped; hashRuns reads it and readAt names the problem', async function () {
    const bytes = crypto.randomBytes(4 * BS)
    const {disk, close} = await diskWith(dir, bytes)
    try {
      const hasher = blockHasher(HashAlgo.XXH3, KEY)
      if (!(await mapAndHashRuns(disk, hasher, [[0, 4]], 0, 4 * BS, BS))) this.skip()
      assert.equal(await mapAndHashRuns(disk, hasher, [[0, 8]], 0, 8 * BS, BS), undefined)
      await assert.rejects(
        hashRuns(disk, hasher, [[0, 8]], 0, 8 * BS, BS, () => Buffer.alloc(8 * BS)),
        /short read at 0/,
      )
    } finally {
      await close()
    }
  })

  it('a mapping read past the end of the file (as after a truncate) rejects with SIGBUS and the process lives on', async function () {
    const bytes = crypto.randomBytes(2 * BS)
    const {disk, close} = await diskWith(dir, bytes)
    try {
      const sums = Buffer.alloc(8 * HASH_LENGTH)
      const zero = new Uint8Array(8)
      // pastEndForTests skips the length check, so the hash loop touches pages past the end.
      const p = mapHashRuns(disk.fd, new Int32Array([0, 8]), 8 * BS, BS, 0, KEY, sums, zero, true)
      if (!p) this.skip()
      await assert.rejects(p, (err: NodeJS.ErrnoException) => err.code === 'SIGBUS' && /shrank or failed under a mapping/.test(err.message))
      // The guard is released: the same thread pool maps and hashes again.
      const again = await mapAndHashRuns(disk, blockHasher(HashAlgo.XXH3, KEY), [[0, 2]], 0, 2 * BS, BS)
      assert.deepEqual(sumOf(again!, 1), blockHasher(HashAlgo.XXH3, KEY).hash(bytes.subarray(BS)))
    } finally {
      await close()
    }
  })

  it('a SIGBUS that is not from a guarded mapping still ends the process, as without the guard', function () {
    if (!mapHashRuns(0, new Int32Array(0), 0, BS, 0, KEY, Buffer.alloc(0), new Uint8Array(0))) this.skip()
    const native = path.join(findPackageRoot(path.dirname(fileURLToPath(import.meta.url))) as string, 'build/Release/vdrep_native.node')
    const script = `
      const b = require(${JSON.stringify(native)})
      b.mapHashRuns(0, new Int32Array(0), 0, 4096, 0, Buffer.alloc(8), Buffer.alloc(0), new Uint8Array(0)).then(() => {
        process.kill(process.pid, 'SIGBUS')
        setTimeout(() => { console.log('survived'); process.exit(0) }, 500)
      })`
    const r = spawnSync(process.execPath, ['-e', script], {encoding: 'utf8', timeout: 20_000})
    assert.equal(r.signal, 'SIGBUS', `the child ended with ${r.signal ?? r.status}: ${r.stdout}${r.stderr}`)
    assert.doesNotMatch(r.stdout, /survived/)
  })

  it("mapping leaves the fd's file offset where it was (the fd may be shared)", async function () {
    const bytes = crypto.randomBytes(8 * BS)
    const file = path.join(dir, 'offset.img')
    await fs.writeFile(file, bytes)
    const fh = await fs.open(file, 'r')
    try {
      const head = Buffer.alloc(100)
      await fh.read(head, 0, 100, null) // at the current offset: moves it to 100
      const disk: ReadableDisk = {fd: fh.fd, readAt: async (buf) => buf, directReads: true}
      if (!(await mapAndHashRuns(disk, blockHasher(HashAlgo.XXH3, KEY), [[0, 8]], 0, 8 * BS, BS))) this.skip()
      const next = Buffer.alloc(100)
      await fh.read(next, 0, 100, null)
      assert.ok(next.equals(bytes.subarray(100, 200)), 'the offset moved under a mapped hash')
    } finally {
      await fh.close()
    }
  })

  // Node resets every signal's disposition at start, so a parent that ignores SIGBUS changes
  // nothing: the guard's previous disposition is the default one (sigbus_guard.cc handles an
  // ignored SIGBUS all the same, for an addon loaded by something other than node).
  it('under a parent that ignores SIGBUS: a guarded fault still falls back, and a kill(2) still ends the process', function () {
    if (!mapHashRuns(0, new Int32Array(0), 0, BS, 0, KEY, Buffer.alloc(0), new Uint8Array(0))) this.skip()
    const native = path.join(findPackageRoot(path.dirname(fileURLToPath(import.meta.url))) as string, 'build/Release/vdrep_native.node')
    const script = `
      const fs = require('fs')
      const b = require(${JSON.stringify(native)})
      const file = ${JSON.stringify(path.join(dir, 'ign.img'))}
      fs.writeFileSync(file, Buffer.alloc(4096, 1))
      const fd = fs.openSync(file, 'r')
      b.mapHashRuns(fd, new Int32Array([0, 4]), 4 * 4096, 4096, 0, Buffer.alloc(8), Buffer.alloc(4 * 32), new Uint8Array(4), true).then(
        () => { console.log('no fault'); process.exit(1) },
        (err) => {
          console.log('guarded ' + err.code)
          process.kill(process.pid, 'SIGBUS')
          setTimeout(() => { console.log('survived'); process.exit(0) }, 300)
        })`
    const r = spawnSync('bash', ['-c', 'trap "" BUS; exec "$0" -e "$1"', process.execPath, script], {encoding: 'utf8', timeout: 20_000})
    assert.equal(r.signal, 'SIGBUS', `the child ended with ${r.signal ?? r.status}: ${r.stdout}${r.stderr}`)
    assert.match(r.stdout, /guarded SIGBUS/)
    assert.doesNotMatch(r.stdout, /survived/)
  })

  it("digestSlots lays out each block's checksum, or the zero hash of its length, back to back", () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), {minLength: 1, maxLength: 40}), fc.nat(), fc.nat(), (zeros, x, y) => {
        const count = zeros.length
        const sums = {sums: crypto.randomBytes(count * HASH_LENGTH), zero: Uint8Array.from(zeros.map((z) => (z ? 1 : 0)))}
        const from = x % count
        const to = from + 1 + (y % (count - from))
        const zeroHashOf = (i: number) => Buffer.alloc(HASH_LENGTH, i + 1)
        const expected = Buffer.concat(Array.from({length: to - from}, (_, k) => sumOf(sums, from + k) ?? zeroHashOf(from + k)))
        assert.deepEqual(digestSlots(sums, from, to, zeroHashOf), expected)
      }),
    )
    // An all-hole chunk has no sums: every slot is a zero hash; a data block without one is a bug.
    const holes = {sums: Buffer.alloc(0), zero: new Uint8Array(3).fill(1)}
    assert.deepEqual(
      digestSlots(holes, 0, 3, () => Buffer.alloc(HASH_LENGTH, 7)),
      Buffer.alloc(3 * HASH_LENGTH, 7),
    )
    assert.throws(() => digestSlots({sums: Buffer.alloc(0), zero: new Uint8Array([1, 0])}, 0, 2, () => Buffer.alloc(HASH_LENGTH)), /no checksum/)
  })
})
