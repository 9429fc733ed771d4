// Fuzz every binary decoder in the core, 1000 cases each (the same properties as
// `npm run fuzz`, which runs 10000): random bytes and mutated valid encodings must decode
// cleanly or fail with a VdrepError, and FrameReader never allocates past MAX_PAYLOAD.
// Set VDREP_FUZZ_SEED to replay a run; a failure names its seed.
import assert from 'node:assert/strict'
import {FUZZ_TARGETS} from '../../bench/fuzz-properties.js'

const RUNS = 1000
const seed = process.env.VDREP_FUZZ_SEED ? Number(process.env.VDREP_FUZZ_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0

describe(`decoder fuzzing (${RUNS} cases each, seed ${seed})`, () => {
  for (const t of FUZZ_TARGETS) {
    it(t.name, async () => {
      const r = await t.run(RUNS, seed)
      assert.equal(r.tried, RUNS)
      assert.equal(r.failures, 0, `${r.failures} of ${r.tried} cases failed; first: ${r.firstFailure}`)
    })
  }
})
