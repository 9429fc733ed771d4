// The receiver's proof reads back what is ON the replica, not the bytes it was handed: a block
// changed on the replica's disk after its write and before its checkpoint's fold (another
// process, a device that lost it) fails the fold, so the session never marks the replica proved.
// Both writers (direct I/O on ext4, and the page cache), several folds in flight, a written block
// and a punched zero run.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {seededBytes, tempDir} from '../../helpers/disks.js'
import {blockHasher, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {PROTOCOL_VERSION} from '../../../src/core/protocol/frame.js'
import {SyncMode, type Hello} from '../../../src/core/protocol/messages.js'
import {ReplicaFile} from '../../../src/core/receiver/replica-file.js'
import {openReplicaWrites} from '../../../src/core/fullsync/direct-writes.js'
import {ReplicaWrites, type BlockWrites} from '../../../src/core/fullsync/receiver-writes.js'
import {ReplicaProof} from '../../../src/core/fullsync/receiver-proof.js'
import {VerifyError} from '../../../src/core/errors.js'

const BS = 64 * 1024
const BLOCKS = 320 // 20 MiB: five fold runs of 4 MiB, read several at a time
const ZERO_FROM = 100 // blocks [100, 132) are a zero run of 2 MiB: punched
const ZERO_TO = 132

function helloFor(p: string, diskSize: number): Hello {
  return {
    version: PROTOCOL_VERSION,
    mode: SyncMode.FULLSYNC,
    hashAlgo: HashAlgo.XXH3,
    blockSize: BS,
    diskSize,
    replicaId: Buffer.alloc(16, 5),
    flags: 0,
    lastCommit: Buffer.alloc(16),
    nextCommit: Buffer.alloc(16, 1),
    path: p,
  }
}

/**
 * Write a new replica of BLOCKS blocks as a full sync does, settle the writes, run `between`
 * (the replica's bytes on disk may change there), then fold the whole disk into the proof.
 */
async function writeThenFold(file: string, direct: boolean, between: (fd: number) => Promise<void>): Promise<{mode: string; folded: Promise<Buffer>}> {
  const size = BLOCKS * BS
  const data = seededBytes('proof-readback', size)
  const hello = helloFor(file, size)
  const hasher = blockHasher(HashAlgo.XXH3, hello.replicaId)
  const replica = await ReplicaFile.open(file, hello)
  await replica.beginFullsync(size, false)
  const writes: BlockWrites = direct ? await openReplicaWrites(replica, BS, () => {}) : new ReplicaWrites(replica, BS)
  const proof = new ReplicaProof(writes.readBack ?? replica, size, BS, hasher)
  for (let b = 0; b < BLOCKS; b++) {
    if (b === ZERO_FROM) {
      await writes.zeroRange(ZERO_FROM * BS, (ZERO_TO - ZERO_FROM) * BS)
      proof.zeroedRun(ZERO_FROM, ZERO_TO - ZERO_FROM)
    }
    if (b >= ZERO_FROM && b < ZERO_TO) continue
    const block = Buffer.from(data.subarray(b * BS, (b + 1) * BS))
    proof.wrote(b, hasher.hash(block))
    await writes.writeBlock(b, block)
  }
  await writes.settle()
  await replica.sync()
  await between(replica.fd)
  const folded = proof
    .fold(BLOCKS, [])
    .then(() => proof.digest())
    .finally(async () => {
      await writes.close()
      await replica.close()
    })
  folded.catch(() => {})
  return {mode: writes.mode, folded}
}

/** Change one byte at `pos` through another descriptor, as another process would, and make it durable. */
async function scribble(file: string, pos: number, byte: number): Promise<void> {
  const fh = await fs.open(file, 'r+')
  try {
    await fh.write(Buffer.from([byte]), 0, 1, pos)
    await fh.datasync()
  } finally {
    await fh.close()
  }
}

describe('full-sync proof: the read-back of the replica', () => {
  let dir: string
  beforeEach(async () => (dir = await tempDir('vdrep-proof-')))
  afterEach(() => fs.rm(dir, {recursive: true, force: true}))

  for (const direct of [true, false]) {
    const how = direct ? 'direct I/O' : 'page cache'
    it(`${how}: an untouched replica folds to the same digest however it is read`, async () => {
      const a = await writeThenFold(path.join(dir, 'a.img'), direct, async () => {})
      if (direct) assert.equal(a.mode, 'direct I/O', 'the test directory is on a file system that takes O_DIRECT (ext4)')
      const digest = await a.folded
      const b = await writeThenFold(path.join(dir, 'b.img'), !direct, async () => {})
      assert.deepEqual(await b.folded, digest)
    })

    it(`${how}: a written block changed on the replica's disk after its write, before the fold: the fold fails`, async () => {
      const file = path.join(dir, 'w.img')
      // Block 250: in the fourth fold run, read while others are in flight.
      const {folded} = await writeThenFold(file, direct, () => scribble(file, 250 * BS + 4097, 0x5a))
      await assert.rejects(folded, (err: Error) => err instanceof VerifyError && /block 250 .*reads back from the replica different/.test(err.message))
    })

    it(`${how}: a punched zero run written behind the writer's back before the fold: the fold fails`, async () => {
      const file = path.join(dir, 'z.img')
      const {folded} = await writeThenFold(file, direct, () => scribble(file, 120 * BS + 3, 0x01))
      await assert.rejects(folded, (err: Error) => err instanceof VerifyError && /block 120 .*should be zero/.test(err.message))
    })
  }
})
