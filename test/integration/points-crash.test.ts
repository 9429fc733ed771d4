// kill -9 of the receiver in the middle of an apply leaves the replica and every kept restore
// point intact. The receiver of a local target runs in the pushing process, so the victim is a
// child process running push() (the same receiver code `vdrep serve` runs); kills land at seeded
// times (the crash matrix's PRNG: VDREP_CRASH_SEED replays), half of them just after the
// journal is complete, inside capture publish / apply / commit / retention. After each kill the
// journal is recovered as `vdrep serve` does at start, then: the replica is the previous point
// or the new one, every kept point reads equal to the copy of the source taken at its push,
// and the next push ends equal with the points still equal.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {push} from '../../src/core/delta/push.js'
import {recoverJournal} from '../../src/core/delta/apply.js'
import {ENTRY_HEADER_SIZE, JOURNAL_HEADER_SIZE, JOURNAL_TRAILER_SIZE, journalPathFor} from '../../src/core/delta/journal.js'
import {fullsync} from '../../src/core/fullsync/client.js'
import {initDisk} from '../../src/core/init.js'
import {listPoints} from '../../src/core/points/list.js'
import {openPoint} from '../../src/core/points/point-reader.js'
import {setRetention} from '../../src/core/points/settings.js'
import {readReplicaState} from '../../src/core/receiver/replica-state.js'
import {scanDisk} from '../../src/core/tracker/scan.js'
import {crashSeed, makeRng} from '../helpers/crash-matrix.js'
import {makeMixedDisk, seededBytes, tempDir} from '../helpers/disks.js'

const BS = 64 * 1024
// The push ships CHANGED blocks whatever the size, so the size sets only how much every check
// reads (each kept point, whole, after each kill): 24 MiB, not 48, took the test 33 s -> 22 s
// with as many kills landing inside the push (same seed, same machine).
const SIZE = 24 << 20
const CHANGED = 160
const POINTS = Number(process.env.VDREP_POINTS_CRASH_POINTS ?? 6)
const PUSH_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/core/delta/push.js')
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function readWhole(replica: string, seq: number): Promise<Buffer> {
  const r = await openPoint(replica, seq)
  try {
    return await r.read(0, r.size)
  } finally {
    await r.close()
  }
}

describe('restore points: kill -9 of the receiver during an apply', function () {
  this.timeout(300_000)
  const seed = crashSeed()
  let dir: string

  before(async () => {
    dir = await tempDir('vdrep-points-crash-')
    console.log(`      points crash seed ${seed} (replay: VDREP_CRASH_SEED=${seed})`)
  })
  after(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it(`leaves the replica at the previous or the new point and every kept point equal to its copy (${POINTS} kills)`, async () => {
    const rng = makeRng(seed, 'points-receiver')
    const disk = path.join(dir, 'src', 'd.img')
    const replica = path.join(dir, 'dst', 'd.img')
    await fs.mkdir(path.dirname(disk))
    await fs.mkdir(path.dirname(replica))
    await makeMixedDisk(disk, SIZE, `points-crash:${seed}`)
    await initDisk(disk, {target: replica, rpoSeconds: 3600, blockSize: BS})
    await fullsync(disk, {})
    await setRetention(replica, 'count:1000')
    const copies = new Map<number, string>() // seq -> sha of the source at that push
    copies.set((await readReplicaState(replica)).state!.lastSeq, sha(await fs.readFile(disk)))
    const outcomes: Record<string, number> = {}

    const checkPoints = async (where: string) => {
      const l = await listPoints(replica)
      assert.equal(l.problem, undefined, `${where}: ${l.problem}`)
      for (const p of l.points) {
        assert.ok(copies.has(p.seq), `${where}: point ${p.seq} was never committed`)
        assert.equal(sha(await readWhole(replica, p.seq)), copies.get(p.seq), `${where}: point ${p.seq} differs from the source at that push`)
      }
      return l.points.length
    }

    for (let i = 0; i < POINTS; i++) {
      const where = `kill ${i + 1}/${POINTS} (VDREP_CRASH_SEED=${seed})`
      const fh = await fs.open(disk, 'r+')
      try {
        for (let k = 0; k < CHANGED; k++) {
          const b = rng.int(SIZE / BS)
          await fh.write(rng.next() < 0.2 ? Buffer.alloc(BS) : seededBytes(`${seed}:${i}:${k}`, BS), 0, BS, b * BS)
        }
      } finally {
        await fh.close()
      }
      await scanDisk(disk, {})
      const prevSeq = (await readReplicaState(replica)).state!.lastSeq
      const prevSha = sha(await fs.readFile(replica))
      const newSha = sha(await fs.readFile(disk))
      const child = spawn(
        process.execPath,
        ['--input-type=module', '-e', `const {push} = await import(${JSON.stringify(PUSH_JS)}); await push(${JSON.stringify(disk)}, {})`],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      )
      const done = new Promise<number | null>((r) => child.on('close', (c) => r(c)))
      const afterJournal = rng.next() < 0.5
      if (afterJournal) {
        const jp = journalPathFor(replica)
        const minFull = JOURNAL_HEADER_SIZE + JOURNAL_TRAILER_SIZE + ENTRY_HEADER_SIZE // at least the trailer is there once sealed
        const end = Date.now() + 30_000
        while (child.exitCode === null && Date.now() < end) {
          const st = await fs.stat(jp).catch(() => undefined)
          if (st && st.size >= minFull) {
            const b = await fs.readFile(jp).catch(() => Buffer.alloc(0))
            if (b.subarray(b.length - 64, b.length - 56).toString('ascii') === 'VDRJEND1') break
          }
          await sleep(1)
        }
        await sleep(rng.int(40))
      } else await sleep(rng.int(700))
      const running = child.exitCode === null
      child.kill('SIGKILL')
      await done
      // What `vdrep serve` does at start (and the next push before anything else).
      const recovered = await recoverJournal(replica)
      const h = sha(await fs.readFile(replica))
      assert.ok(h === prevSha || h === newSha, `${where}: the replica is neither the previous point nor the new one`)
      const seq = (await readReplicaState(replica)).state!.lastSeq
      if (h === newSha) copies.set(seq, newSha)
      else assert.equal(seq, prevSeq, `${where}: the state moved but the replica did not`)
      const n = await checkPoints(`${where}, after the crash`)
      const label = `${!running ? 'push ended before the kill' : afterJournal ? 'killed after the journal' : 'killed at a random time'}: ${h === prevSha ? 'previous' : 'new'} point, journal ${recovered}`
      outcomes[label] = (outcomes[label] ?? 0) + 1
      // The next push ends equal, and every point is still right.
      const r = await push(disk, {})
      assert.notEqual(r.mode, 'fullsync', `${where}: ${r.reason}`)
      const after = (await readReplicaState(replica)).state!.lastSeq
      copies.set(after, sha(await fs.readFile(disk)))
      assert.equal(sha(await fs.readFile(replica)), sha(await fs.readFile(disk)), `${where}: the next push did not end equal`)
      assert.ok((await checkPoints(`${where}, after the next push`)) >= n, `${where}: a point was lost`)
    }
    console.log(`      outcomes: ${JSON.stringify(outcomes)}`)
  })
})
