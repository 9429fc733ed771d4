// Power loss, crash state by crash state (issue 22): a short seeded pass. The recorder (an
// LD_PRELOAD shim, native/recorder/) logs a real vdrep run's file operations; the
// generator (test/helpers/powercut/) builds the states a power cut may leave; each is recovered
// the way vdrep recovers and checked. `npm run powercut -- --points N` is the long run.
// VDREP_POWERCUT_SEED=S replays a seed.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {crashSeed} from '../helpers/crash-matrix.js'
import {tempDir} from '../helpers/disks.js'
import {crashStates, type CrashStateRef} from '../helpers/powercut/crash-states.js'
import {NextSyncPick, nextPushAfterPsfState, nextPushAfterReceiverState, nextPushAfterTrackerState} from '../helpers/powercut/next-sync.js'
import {buildTimeline, crashState, takeSnapshot} from '../helpers/powercut/fs-model.js'
import {recorderLibrary, recordingEnv} from '../helpers/powercut/record.js'
import {checkFullsyncState, recordFullsyncScenario, rerunFullsync} from '../helpers/powercut/fullsync-component.js'
import {checkReceiverState, recordReceiverScenario} from '../helpers/powercut/receiver-component.js'
import {decodeRecording, LOG_HEADER_SIZE, Op, RecordingError} from '../helpers/powercut/recording.js'
import {checkSourceState, recordPsfPushScenario, recordPsfScanScenario, recordTrackerScenario} from '../helpers/powercut/source-component.js'
import {checkStates, formatTally} from '../helpers/powercut/tally.js'

const seed = crashSeed(process.env.VDREP_POWERCUT_SEED)

function haveRecorder(): boolean {
  try {
    recorderLibrary()
    return true
  } catch {
    return false
  }
}

describe('power cut: the recorder and the crash-state generator', function () {
  this.timeout(60_000)
  let dir: string
  before(function () {
    if (!haveRecorder()) this.skip() // no C compiler: said by scripts/build-recorder.cjs
  })
  beforeEach(async () => {
    dir = await tempDir('vdrep-powercut-')
    await fs.mkdir(path.join(dir, 'root'))
    await fs.writeFile(path.join(dir, 'root', 'gone'), 'old')
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  const script = `
    const fs = require('node:fs')
    const fd = fs.openSync('root/a.tmp', 'w')
    fs.writeSync(fd, Buffer.alloc(6000, 7), 0, 6000, 0)
    fs.fdatasyncSync(fd)
    fs.writeSync(fd, Buffer.from('tail'), 0, 4, 6000)
    fs.closeSync(fd)
    fs.renameSync('root/a.tmp', 'root/a')
    const d = fs.openSync('root', 'r'); fs.fsyncSync(d); fs.closeSync(d)
    fs.writeFileSync('outside', 'not recorded')
    fs.mkdirSync('root/sub')
    fs.unlinkSync('root/gone')
  `

  async function recordScript(): Promise<Buffer> {
    const log = path.join(dir, 'log')
    execFileSync(process.execPath, ['-e', script], {cwd: dir, env: {...process.env, ...recordingEnv([path.join(dir, 'root')], log)}})
    return fs.readFile(log)
  }

  it('logs every write (with its bytes), barrier, rename, mkdir, unlink and directory fsync under its root, in order, and nothing outside', async () => {
    const root = await fs.realpath(path.join(dir, 'root'))
    const ops = decodeRecording(await recordScript())
    assert.deepEqual(
      ops.map((o) => [o.op, o.path.replace(root, 'R'), o.path2.replace(root, 'R'), o.offset, o.size]),
      [
        [Op.CREATE, 'R/a.tmp', '', 0, 0],
        [Op.WRITE, 'R/a.tmp', '', 0, 6000],
        [Op.FDATASYNC, 'R/a.tmp', '', 0, 0],
        [Op.WRITE, 'R/a.tmp', '', 6000, 4],
        [Op.RENAME, 'R/a.tmp', 'R/a', 0, 0],
        [Op.DIR_FSYNC, 'R', '', 0, 0],
        [Op.MKDIR, 'R/sub', '', 0, 0],
        [Op.UNLINK, 'R/gone', '', 0, 0],
      ],
    )
    assert.deepEqual(ops[1].data, Buffer.alloc(6000, 7))
    assert.equal(ops[3].data.toString(), 'tail')
  })

  it('refuses a recording with a torn tail, a flipped byte or a foreign magic', async () => {
    const log = await recordScript()
    assert.throws(() => decodeRecording(log.subarray(0, log.length - 3)), RecordingError)
    const flipped = Buffer.from(log)
    flipped[LOG_HEADER_SIZE + 60] ^= 1
    assert.throws(() => decodeRecording(flipped), /crc32/)
    const foreign = Buffer.from(log)
    foreign[0] = 0x58
    assert.throws(() => decodeRecording(foreign), /magic/)
  })

  it('states: an unsynced write may be lost page by page, a rename is durable only after its directory fsync, a new name never before it', async () => {
    const snapshot = await takeSnapshot([path.join(dir, 'root')])
    const root = await fs.realpath(path.join(dir, 'root'))
    const t = buildTimeline(decodeRecording(await recordScript()), snapshot)
    const seen = new Set<string>()
    for (const s of crashStates(t, {seed, perPoint: 1000})) {
      const files = crashState(t, s.point, s.choice)
      const names = [...files.keys()].filter((p) => p !== root).map((p) => path.basename(p))
      const a = files.get(`${root}/a`) ?? files.get(`${root}/a.tmp`)
      seen.add(`${names.sort().join('+')}:${a ? a.length : '-'}`)
      // After the fdatasync (op 2) its 6000 bytes survive in every state where the file is named.
      if (a && s.point.at > 2) assert.deepEqual(a.subarray(0, 6000), Buffer.alloc(6000, 7))
    }
    // Before the directory fsync: the old name only (the new file's name not yet durable), or the
    // new file under its temp name; the tail present or lost.
    for (const want of ['gone:-', 'a.tmp+gone:6000', 'a.tmp+gone:6004', 'a+gone:6000', 'a+gone:6004', 'a+gone+sub:6004', 'a+sub:6004']) {
      assert.ok(seen.has(want), `state ${want} among ${[...seen].join(', ')}`)
    }
    // One directory's operations persist in order: the unlink never without the mkdir before it.
    assert.ok(![...seen].some((st) => st.startsWith('a:')), [...seen].join(', '))
  })
})

describe('power cut: crash states of vdrep (short seeded pass)', function () {
  this.timeout(120_000)
  let dir: string
  before(async function () {
    if (!haveRecorder()) this.skip()
    console.log(`      power-cut seed ${seed} (replay with VDREP_POWERCUT_SEED=${seed})`)
  })
  beforeEach(async () => {
    dir = await tempDir('vdrep-powercut-')
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it("receiver: a push's commit cut at every barrier, recovered as `vdrep serve` starts: the previous point or the new one, every kept restore point reads back; the next push --no-fallback ends equal", async () => {
    const sc = await recordReceiverScenario(dir)
    const pick = new NextSyncPick()
    const t = await checkStates('receiver commit', sc.timeline, {seed, perPoint: 12}, async (s) => {
      const v = await checkReceiverState(sc, s, path.join(dir, 'state'))
      pick.offer(s, v, v.outcome === 'previous point')
      return v
    })
    console.log(`      ${formatTally(t, seed)}`)
    assert.deepEqual(t.failures, [])
    assert.ok((t.outcomes['previous point'] ?? 0) > 0 && (t.outcomes['new point'] ?? 0) > 0, JSON.stringify(t.outcomes))
    // The real next push on the latest state left at the previous point: it ships what the cut push did not.
    assert.equal(await nextPushAfterReceiverState(sc, pick.best!.s, pick.best!.outcome), undefined)
  })

  it("regression: the journal's name is durable before the apply writes the replica (the state that broke it: the journal's create lost, the replica's blocks written)", async () => {
    const sc = await recordReceiverScenario(dir, {earlier: 1})
    const replica = path.join(sc.realRoot, 'disk.img')
    const replicaInode = sc.timeline.initial.get(replica)
    const worst: CrashStateRef[] = []
    for (const p of sc.timeline.points) {
      if (!p.pending.some((u) => u.inode === replicaInode)) continue
      // Every page of data written, no directory operation after the last directory fsync.
      worst.push({
        point: p,
        choice: {keep: new Set(p.pending.map((u) => u.id)), prefix: new Map()},
        label: `crash before op ${p.at} (${p.what}), every directory operation since its fsync lost`,
      })
    }
    assert.ok(worst.length > 0, 'the apply writes the replica before a barrier')
    for (const s of worst) {
      const v = await checkReceiverState(sc, s, path.join(dir, 'state'))
      assert.equal(v.failure, undefined)
    }
  })

  it('a planted missing fsync (the apply without its fdatasync) loses the new point in some crash state, and the check names it', async () => {
    const sc = await recordReceiverScenario(dir, {env: {VDREP_TEST_PLANT_SKIP_APPLY_SYNC: '1'}})
    const t = await checkStates('receiver commit (planted)', sc.timeline, {seed, perPoint: 12}, (s) => checkReceiverState(sc, s, path.join(dir, 'state')))
    assert.ok(t.failures.length > 0, 'the broken build lost nothing in any state')
    assert.match(t.failures[0], /the state trusts sequence \d+ but the replica is (no point at all \(a mix\)|sequence \d+).*pages lost/)
  })

  it('.psf during a push (every state of its barriers): it opens, and its bitmaps cover every block not on the point the replica holds; with the new sequence pending, the next push adopts it and ends equal', async () => {
    const sc = await recordPsfPushScenario(dir)
    const pick = new NextSyncPick()
    const t = await checkStates('.psf during a push', sc.timeline, {seed, perPoint: 64}, async (s) => {
      const v = await checkSourceState(sc, s, path.join(dir, 'state'))
      pick.offer(s, v, v.outcome.includes('pending'))
      return v
    })
    console.log(`      ${formatTally(t, seed)}`)
    assert.deepEqual(t.failures, [])
    // A record that has the committed sequence only as pending: the next push adopts it and ends equal.
    assert.ok(pick.best, 'some state has the new sequence pending')
    assert.equal(await nextPushAfterPsfState(sc, pick.best.s), undefined)
  })

  it('tracker (writes, a push through it, more writes): a dirty bit is durable before the data it covers, in every sampled state (bitmaps alone, no verification); after its restart a push --no-fallback ends equal', async function () {
    if (process.getuid?.() !== 0) this.skip() // as the other tracker tests: qemu-io through the NBD export
    const sc = await recordTrackerScenario(dir, {push: true})
    const pick = new NextSyncPick()
    const t = await checkStates('tracker', sc.timeline, {seed, perPoint: 8}, async (s) => {
      const v = await checkSourceState(sc, s, path.join(dir, 'state'))
      pick.offer(s, v)
      return v
    })
    console.log(`      ${formatTally(t, seed)}`)
    assert.deepEqual(t.failures, [])
    // The tracker restarted on the latest, most damaged state; a push --no-fallback through it ends equal.
    assert.equal(await nextPushAfterTrackerState(sc, pick.best!.s), undefined)
  })

  it('a planted missing fsync in the tracker (the dirty bits written, not synced, before the data) leaves a changed block unmarked in some state, and the check names it', async function () {
    if (process.getuid?.() !== 0) this.skip()
    const sc = await recordTrackerScenario(dir, {env: {VDREP_TEST_PLANT_SKIP_BITMAP_SYNC: '1'}})
    const t = await checkStates('tracker (planted)', sc.timeline, {seed, perPoint: 8}, (s) => checkSourceState(sc, s, path.join(dir, 'state')))
    assert.ok(t.failures.length > 0, 'the broken build lost no bit in any state')
    assert.match(t.failures[0], /block\(s\) [\d, ]+ differ from sequence \d+ but no bitmap marks them .*disk\.img\.psf.*pages lost/)
  })

  for (const kind of ['fresh', 'seeded'] as const) {
    it(`full sync to a ${kind === 'fresh' ? 'fresh target' : 'seed'}: incomplete with every block below its resume point the source's (the real rerun resumes there and ends equal), or complete and equal`, async () => {
      const sc = await recordFullsyncScenario(dir, {kind})
      let rerun: {s: CrashStateRef; resumeBlock: number} | undefined
      const t = await checkStates(`full sync (${kind})`, sc.timeline, {seed, perPoint: 6}, async (s) => {
        const v = await checkFullsyncState(sc, s)
        // The real rerun on the state with the furthest resume point.
        if (!v.failure && v.resumeBlock !== undefined && v.resumeBlock >= (rerun?.resumeBlock ?? 0)) rerun = {s, resumeBlock: v.resumeBlock}
        return v
      })
      console.log(`      ${formatTally(t, seed)}`)
      assert.deepEqual(t.failures, [])
      assert.ok(rerun && rerun.resumeBlock > 0, 'some state resumes from a checkpoint')
      assert.equal(await rerunFullsync(sc, rerun.s, rerun.resumeBlock), undefined)
    })
  }

  it('.psf during a scan (every state): it opens; the bits it lost are found by the local check the record then demands', async () => {
    const sc = await recordPsfScanScenario(dir)
    const t = await checkStates('.psf during a scan', sc.timeline, {seed, perPoint: 64}, (s) => checkSourceState(sc, s, path.join(dir, 'state')))
    console.log(`      ${formatTally(t, seed)}`)
    assert.deepEqual(t.failures, [])
  })
})
