// ReplicaFile's writes: runs written in any order, in pieces large enough to start writeback
// (native startWriteback) while later runs are written, land exactly, with and without the
// addon, and close() waits for a writeback still running before it closes the fd.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import fc from 'fast-check'
import {tempDir} from '../../helpers/disks.js'
import * as native from '../../../src/core/native/binding.js'
import {HashAlgo} from '../../../src/core/hash/block-hash.js'
import {PROTOCOL_VERSION} from '../../../src/core/protocol/frame.js'
import {SyncMode, type Hello} from '../../../src/core/protocol/messages.js'
import {ReplicaFile} from '../../../src/core/receiver/replica-file.js'

const MiB = 1 << 20
const PIECE = MiB
const PIECES = 40 // 40 MiB: past the 8 MiB that starts a writeback, several times over

function hello(p: string): Hello {
  return {
    version: PROTOCOL_VERSION,
    mode: SyncMode.FULLSYNC,
    hashAlgo: HashAlgo.BLAKE3,
    blockSize: 64 * 1024,
    diskSize: PIECES * PIECE,
    replicaId: Buffer.alloc(16, 3),
    flags: 0,
    lastCommit: Buffer.alloc(16),
    nextCommit: Buffer.alloc(16, 1),
    path: p,
  }
}

describe('core/receiver/replica-file writes', function () {
  this.timeout(60_000)
  let dir: string
  const source = randomBytes(PIECES * PIECE)
  before(async () => {
    dir = await tempDir()
  })
  after(async () => {
    native.__forceFallbackForTests(false)
    await fs.rm(dir, {recursive: true, force: true})
  })

  for (const fallback of [false, true]) {
    it(`runs of 1-3 pieces in any order land exactly (${fallback ? 'without' : 'with'} the addon's writeback)`, async () => {
      native.__forceFallbackForTests(fallback)
      let n = 0
      await fc.assert(
        fc.asyncProperty(fc.array(fc.integer({min: 1, max: 3}), {minLength: PIECES, maxLength: PIECES}), fc.integer(), async (lengths, seed) => {
          // Cut the disk into runs, then write them in a shuffled order.
          const runs: Array<[number, number]> = []
          for (let at = 0, i = 0; at < PIECES; i++) {
            const len = Math.min(lengths[i], PIECES - at)
            runs.push([at, len])
            at += len
          }
          let s = seed >>> 0
          for (let i = runs.length - 1; i > 0; i--) {
            s = (Math.imul(s, 1103515245) + 12345) >>> 0
            const j = s % (i + 1)
            ;[runs[i], runs[j]] = [runs[j], runs[i]]
          }
          const file = path.join(dir, `r${n++}.img`)
          const replica = await ReplicaFile.open(file, hello(file))
          await replica.beginFullsync(PIECES * PIECE, false)
          for (const [at, len] of runs) {
            const buffers = []
            for (let k = at; k < at + len; k++) buffers.push(source.subarray(k * PIECE, (k + 1) * PIECE))
            await replica.writeRun(buffers, at * PIECE)
          }
          await replica.sync()
          await replica.close()
          assert.ok((await fs.readFile(file)).equals(source))
          await fs.rm(file)
        }),
        {numRuns: 6},
      )
    })
  }
})
