// Tests of src/core/delta/journal.ts and apply.ts on real files in a temp folder:
// a journal written by JournalWriter applies to the replica the same whether the writing
// session's entry list is used or the file is parsed back (crash recovery); scattered,
// contiguous, zero-run and short-last blocks land where they belong; a journal large enough
// to start background syncs seals; recovery verifies every block before writing any; entries
// out of block order are refused.
import {replicaFence} from '../../../src/core/receiver/replica-fence.js'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {StateError, VerifyError} from '../../../src/core/errors.js'
import {blockHasher, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {applyJournal, recoverJournal} from '../../../src/core/delta/apply.js'
import {readReplicaState, writeReplicaState} from '../../../src/core/receiver/replica-state.js'
import {
  EntryKind,
  ENTRY_HEADER_SIZE,
  JOURNAL_HEADER_SIZE,
  journalPathFor,
  JournalWriter,
  readJournal,
  type JournalHeader,
} from '../../../src/core/delta/journal.js'

/** Flip every bit of one byte of a file: always a change (writing a fixed value is none 1 time in 256). */
async function flipByte(file: string, offset: number): Promise<void> {
  const fh = await fs.open(file, 'r+')
  try {
    const b = Buffer.alloc(1)
    await fh.read(b, 0, 1, offset)
    b[0] = b[0]! ^ 0xff
    await fh.write(b, 0, 1, offset)
  } finally {
    await fh.close()
  }
}

const BS = 64 * 1024
const hasher = blockHasher(HashAlgo.BLAKE3, Buffer.alloc(16))

interface Plan {
  header: JournalHeader
  /** Data blocks, in block order, interleaved with zero runs. */
  items: Array<{block: number; data: Buffer} | {block: number; count: number}>
}

function plan(diskSize: number, dataBlocks: number[], zeroRuns: Array<[number, number]> = []): Plan {
  const items: Plan['items'] = []
  for (const b of dataBlocks) items.push({block: b, data: crypto.randomBytes(Math.min(BS, diskSize - b * BS))})
  for (const [block, count] of zeroRuns) items.push({block, count})
  items.sort((x, y) => x.block - y.block)
  return {header: {blockSize: BS, seq: 7, diskSize, replicaId: crypto.randomBytes(16), hashAlgo: HashAlgo.BLAKE3}, items}
}

async function writeJournal(file: string, p: Plan): Promise<JournalWriter> {
  const j = await JournalWriter.create(file, p.header)
  try {
    for (const it of p.items) {
      if ('data' in it) await j.append({kind: EntryKind.DATA, block: it.block, hash: hasher.hash(it.data)}, it.data)
      else await j.append({kind: EntryKind.ZERO, block: it.block, count: it.count})
    }
    await j.seal(crypto.randomBytes(32))
  } finally {
    await j.close()
  }
  return j
}

/** What the replica must hold after the plan is applied to `before`. */
function expected(before: Buffer, p: Plan): Buffer {
  const out = Buffer.alloc(p.header.diskSize)
  before.copy(out)
  for (const it of p.items) {
    if ('data' in it) it.data.copy(out, it.block * BS)
    else out.fill(0, it.block * BS, Math.min(p.header.diskSize, (it.block + it.count) * BS))
  }
  return out
}

describe('replica journal: write, apply, recover', () => {
  let dir: string
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vdrep-journal-'))
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  async function replicaWith(content: Buffer): Promise<string> {
    const file = path.join(dir, 'replica.img')
    await fs.writeFile(file, content)
    return file
  }

  for (const mode of ['the session entry list', 'the journal parsed back (recovery)'] as const) {
    it(`applies scattered, contiguous, zero-run and short-last blocks using ${mode}`, async () => {
      const diskSize = 40 * BS + 1000 // a short last block
      const p = plan(
        diskSize,
        [0, 1, 2, 5, 9, 10, 17, 33, 40],
        [
          [20, 3],
          [36, 2],
        ],
      )
      const before = crypto.randomBytes(diskSize)
      const replicaPath = await replicaWith(before)
      const jp = path.join(dir, 'replica.img.vdrep-journal')
      const j = await writeJournal(jp, p)
      const fh = await fs.open(replicaPath, 'r+')
      try {
        const r = await applyJournal(jp, fh, mode === 'the session entry list' ? {header: p.header, entries: j.entries} : undefined)
        assert.equal(r.seq, 7)
        assert.equal(r.blocks, 9 + 5)
      } finally {
        await fh.close()
      }
      assert.ok((await fs.readFile(replicaPath)).equals(expected(before, p)))
    })
  }

  it("a symlink planted at the journal's name is not followed: nothing outside is written", async () => {
    const victim = path.join(dir, 'victim.bin')
    await fs.writeFile(victim, 'keep me')
    await replicaWith(Buffer.alloc(4 * BS))
    await fs.symlink(victim, path.join(dir, 'replica.img.vdrep-journal'))
    const p = plan(4 * BS, [1], [])
    await assert.rejects(JournalWriter.create(path.join(dir, 'replica.img.vdrep-journal'), p.header), (e: NodeJS.ErrnoException) => e.code === 'ELOOP')
    assert.equal(await fs.readFile(victim, 'utf8'), 'keep me')
  })

  it('the session entry list matches what recovery parses back', async () => {
    const p = plan(64 * BS, [3, 4, 5, 60], [[10, 4]])
    const jp = path.join(dir, 'j')
    const j = await writeJournal(jp, p)
    const parsed = await readJournal(jp)
    assert.deepEqual(j.entries, parsed.entries)
  })

  it('a journal over 16 MiB (background syncs while it grows) seals and applies', async () => {
    const blocks = Array.from({length: 300}, (_, i) => i * 2) // scattered: no writev merges
    const diskSize = 600 * BS
    const p = plan(diskSize, blocks)
    const replicaPath = await replicaWith(Buffer.alloc(diskSize))
    const jp = path.join(dir, 'j')
    const j = await writeJournal(jp, p)
    assert.ok(j.dataBytes > 16 << 20)
    const fh = await fs.open(replicaPath, 'r+')
    try {
      await applyJournal(jp, fh, {header: p.header, entries: j.entries})
    } finally {
      await fh.close()
    }
    assert.ok((await fs.readFile(replicaPath)).equals(expected(Buffer.alloc(diskSize), p)))
  })

  it('recovery checks every block before writing any: a damaged late block leaves the replica untouched', async () => {
    const diskSize = 400 * BS
    const blocks = Array.from({length: 200}, (_, i) => i * 2) // spans more than one 8 MiB read
    const p = plan(diskSize, blocks)
    const before = crypto.randomBytes(diskSize)
    const replicaPath = await replicaWith(before)
    const jp = path.join(dir, 'j')
    const j = await writeJournal(jp, p)
    const last = j.entries[j.entries.length - 1]
    await flipByte(jp, last.dataOffset + 100)
    const fh = await fs.open(replicaPath, 'r+')
    try {
      await assert.rejects(applyJournal(jp, fh), (e: unknown) => e instanceof VerifyError && /block 398 does not match/.test((e as Error).message))
    } finally {
      await fh.close()
    }
    assert.ok((await fs.readFile(replicaPath)).equals(before), 'no block of a journal that fails verification is written')
  })

  it('entries out of block order are refused as a corrupt journal', async () => {
    const p = plan(16 * BS, [2, 6])
    const jp = path.join(dir, 'j')
    const j = await writeJournal(jp, p)
    // Rewrite the second entry's block number to 1 (< the first's 2).
    const fh = await fs.open(jp, 'r+')
    const at = j.entries[1].dataOffset - ENTRY_HEADER_SIZE
    const b = Buffer.alloc(8)
    b.writeBigUInt64LE(1n)
    await fh.write(b, 0, 8, at)
    await fh.close()
    assert.ok(at > JOURNAL_HEADER_SIZE)
    await assert.rejects(readJournal(jp), (e: unknown) => e instanceof StateError && /out of order/.test((e as Error).message))
  })

  // The receiver answers COMMITTED once the state file records the sequence and removes the
  // journal after: a journal left then (the receiver died, or the unlink failed) is already applied.
  it("a journal left after its commit (its sequence is the state's) is removed without writing the replica", async () => {
    const diskSize = 16 * BS
    const p = plan(diskSize, [1, 5])
    const before = crypto.randomBytes(diskSize)
    const replicaPath = await replicaWith(before)
    await writeJournal(journalPathFor(replicaPath), p)
    const st = await fs.stat(replicaPath, {bigint: true})
    await writeReplicaState(replicaPath, {
      replicaId: p.header.replicaId.toString('hex'),
      complete: true,
      resumeBlock: 0,
      diskSize,
      blockSize: BS,
      hashAlgo: HashAlgo.BLAKE3,
      generation: 1,
      lastSeq: p.header.seq,
      digest: '',
      size: diskSize,
      mtimeNs: st.mtimeNs.toString(),
      ctimeNs: st.ctimeNs.toString(),
      updatedMs: Date.now(),
    })
    assert.equal(await recoverJournal(replicaPath), 'already-applied')
    await assert.rejects(fs.access(journalPathFor(replicaPath)))
    assert.ok((await fs.readFile(replicaPath)).equals(before), 'an applied journal is not written again')
  })

  // A replay records the replica's stat as committed: a write by someone else while the
  // receiver was down must not be hidden by it.
  for (const [what, touch, doubted] of [
    ['untouched since the commit (the apply never started)', 'none', false],
    ['written by the interrupted apply itself (right after the journal)', 'apply', false],
    ['written long after the journal (a test boot while the receiver was down)', 'later', true],
  ] as const) {
    it(`a replay onto a replica ${what}: ${doubted ? 'diverged: nothing until the user says --discard-replica-changes' : 'trusted'}`, async () => {
      const diskSize = 16 * BS
      const p = plan(diskSize, [1, 5])
      const before = crypto.randomBytes(diskSize)
      const replicaPath = await replicaWith(before)
      const st = await fs.stat(replicaPath, {bigint: true})
      await writeReplicaState(replicaPath, {
        replicaId: p.header.replicaId.toString('hex'),
        complete: true,
        resumeBlock: 0,
        diskSize,
        blockSize: BS,
        hashAlgo: HashAlgo.BLAKE3,
        generation: 1,
        lastSeq: p.header.seq - 1,
        digest: '',
        size: diskSize,
        mtimeNs: st.mtimeNs.toString(),
        ctimeNs: st.ctimeNs.toString(),
        updatedMs: Date.now(),
      })
      await new Promise((r) => setTimeout(r, 20))
      await writeJournal(journalPathFor(replicaPath), p)
      if (touch !== 'none') {
        const fh = await fs.open(replicaPath, 'r+')
        await fh.write(Buffer.from('x'), 0, 1, 9 * BS) // a block that is not in the bundle
        await fh.close()
      }
      if (touch === 'later') {
        const t = new Date(Date.now() + 3600_000)
        await fs.utimes(replicaPath, t, t) // as written an hour after the crash
      }
      assert.equal(await recoverJournal(replicaPath), 'replayed')
      const {state} = await readReplicaState(replicaPath)
      assert.equal(state?.lastSeq, p.header.seq)
      if (doubted) assert.match(state?.doubt ?? '', /apply was interrupted .* only a full sync/)
      else assert.equal(state?.doubt, undefined)
      // Written by something else: the replica moved on, and is fenced (REPLICA_DIVERGED), not only doubted.
      assert.equal(state?.diverged, doubted ? true : undefined)
      const hello = {
        version: 2,
        mode: 2,
        hashAlgo: HashAlgo.BLAKE3,
        blockSize: BS,
        diskSize,
        replicaId: p.header.replicaId,
        flags: 0,
        lastCommit: Buffer.alloc(16),
        nextCommit: Buffer.alloc(16, 1),
        path: 'r.img',
      }
      assert.equal(replicaFence(hello, state, undefined, undefined)?.code, doubted ? 'REPLICA_DIVERGED' : undefined)
    })
  }

  // A journal that reads back damaged must not fail every later push, nor leave a half-applied
  // replica marked complete.
  for (const touched of [false, true]) {
    it(`recovery of a damaged journal onto a replica ${touched ? 'an interrupted apply wrote' : 'as committed'}: discarded, the replica ${touched ? 'marked incomplete' : 'still complete'}`, async () => {
      const diskSize = 16 * BS
      const p = plan(diskSize, [1, 5])
      const replicaPath = await replicaWith(crypto.randomBytes(diskSize))
      const st = await fs.stat(replicaPath, {bigint: true})
      await writeReplicaState(replicaPath, {
        replicaId: p.header.replicaId.toString('hex'),
        complete: true,
        resumeBlock: 0,
        diskSize,
        blockSize: BS,
        hashAlgo: HashAlgo.BLAKE3,
        generation: 1,
        lastSeq: p.header.seq - 1,
        digest: '',
        size: diskSize,
        mtimeNs: st.mtimeNs.toString(),
        ctimeNs: st.ctimeNs.toString(),
        updatedMs: Date.now(),
      })
      const jp = journalPathFor(replicaPath)
      const j = await writeJournal(jp, p)
      await flipByte(jp, j.entries[1].dataOffset + 7) // the second block reads back wrong
      if (touched) {
        await new Promise((r) => setTimeout(r, 20))
        const fh = await fs.open(replicaPath, 'r+')
        await fh.write(Buffer.alloc(BS, 0x33), 0, BS, 1 * BS) // the live apply got as far as block 1
        await fh.close()
      }
      assert.equal(await recoverJournal(replicaPath), 'discarded')
      await assert.rejects(fs.access(jp), 'the damaged journal is gone')
      const {state} = await readReplicaState(replicaPath)
      assert.equal(state?.complete, !touched)
      assert.equal(state?.lastSeq, p.header.seq - 1)
    })
  }
})
