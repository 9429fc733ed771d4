// The crash matrix in CI: a few seeded kill -9 points per kind (client, receiver, tracker;
// during a full sync and during a push, over a real sshd), each recovered with the normal
// commands and checked (test/helpers/crash-matrix.ts has the checks). The seed is printed;
// VDREP_CRASH_SEED=N replays it, VDREP_CRASH_POINTS=N changes the points per kind. The
// bench-length run (20+ points per kind) is `node dist/bench/crash-matrix.js --points 20`.
import {CRASH_KINDS, CrashMatrix, crashSeed, formatReports, type KindReport} from '../helpers/crash-matrix.js'

const points = Number(process.env.VDREP_CRASH_POINTS || 2)
const only = process.env.VDREP_CRASH_KINDS?.split(',')

describe('crash matrix: kill -9 of client, receiver and tracker during fullsync and push (over SSH)', function () {
  this.timeout(600_000)
  const seed = crashSeed()
  const reports: KindReport[] = []
  let matrix: CrashMatrix | undefined

  before(async function () {
    if (process.getuid?.() !== 0) this.skip() // sshd and a second login need root, as in the other SSH tests
    console.log(`      crash matrix seed ${seed} (replay with VDREP_CRASH_SEED=${seed}), ${points} points per kind`)
    matrix = await CrashMatrix.start({seed, log: process.env.VDREP_TEST_DEBUG ? (l) => console.log(l) : undefined})
  })
  after(async () => {
    await matrix?.stop()
    if (reports.length > 0) for (const line of formatReports(seed, reports)) console.log(`      ${line}`)
  })

  for (const kind of CRASH_KINDS.filter((k) => !only || only.includes(k))) {
    const [sync, victim] = kind.split('-')
    it(`${kind}: kill -9 of the ${victim === 'receiver' ? 'receiver (vdrep serve)' : victim === 'tracker' ? 'tracker (vdrep track)' : 'client'} during a ${sync} at seeded points; the replica stays a point in time, nothing is lost, the next ${sync} ends equal`, async () => {
      reports.push(await matrix!.run(kind, points))
    })
  }
})
