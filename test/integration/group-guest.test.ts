// The group point in time with a real guest (issue 20): qemu-system-x86_64 boots a kernel whose
// init writes numbered records alternately to two virtio disks, each record only after the
// previous one completed (O_DIRECT | O_SYNC), through two `vdrep track` NBD exports. While it
// writes, `vdrep push --group` runs several times; after each, the records on the two replicas
// must be exactly {0..k}: never record n+1 without record n. Two independent pushes of the same
// disks, one after the other, are shown to leave a gap, so the check does prove something.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, vdrep} from '../helpers/cli.js'
import {tempDir} from '../helpers/disks.js'
import {startTracker, type RunningTracker} from '../core/tracker/tracker-helpers.js'
import {bootGuest, buildInitramfs, firstGap, guestUnavailable, readRecords, type Guest} from '../helpers/guest.js'
import type {GroupPushResult} from '../../src/core/group/push-group.js'

const MiB = 1 << 20
const RECORDS = 60_000

describe('push --group with a real guest writing ordered records to two disks', function () {
  this.timeout(600_000)
  let dir: string
  let disks: string[]
  let replicas: string[]
  let trackers: RunningTracker[] = []
  let guest: Guest | undefined

  before(async function () {
    const why = await guestUnavailable()
    if (why) {
      if (process.env.CI) throw new Error(`the guest test cannot run: ${why}`)
      this.skip()
    }
    dir = await tempDir()
    await fs.mkdir(path.join(dir, 'replicas'))
    disks = ['a', 'b'].map((n) => path.join(dir, `vm-${n}.img`))
    replicas = ['a', 'b'].map((n) => path.join(dir, 'replicas', `vm-${n}.img`))
    for (let i = 0; i < 2; i++) {
      await fs.writeFile(disks[i], '')
      await fs.truncate(disks[i], 128 * MiB)
      const init = await vdrep(['init', disks[i], '--to', replicas[i], '--group', 'vm1', '--block-size', '4k'])
      assert.equal(init.code, 0, init.stderr)
      const fsync = await vdrep(['fullsync', disks[i]])
      assert.equal(fsync.code, 0, fsync.stderr)
    }
    trackers = await Promise.all(disks.map((d, i) => startTracker(d, ['--nbd', `unix:${path.join(dir, `nbd-${i}.sock`)}`])))
    const initramfs = path.join(dir, 'initramfs.cpio')
    await buildInitramfs(initramfs, `/bin/writer ${RECORDS} /dev/vda /dev/vdb`)
    guest = await bootGuest(
      initramfs,
      disks.map((_, i) => path.join(dir, `nbd-${i}.sock`)),
    )
    await guest.waitFor(/VDREP-GUEST record 1000\b/, 300_000)
  })

  after(async () => {
    await guest?.kill()
    await Promise.all(trackers.map((t) => t.stop('SIGTERM').catch(() => undefined)))
    if (dir) await fs.rm(dir, {recursive: true, force: true})
  })

  it('every group push leaves both replicas at one prefix of the record sequence', async () => {
    let last = -1
    for (let round = 0; round < 5; round++) {
      const r = await vdrep(['push', '--group', 'vm1', ...disks, '--json'])
      assert.equal(r.code, 0, r.stderr)
      const out = json<GroupPushResult>(r)
      assert.equal(out.members.length, 2)
      const records = await readRecords(replicas)
      const gap = firstGap(records)
      assert.equal(gap, null, `group push ${round}: record ${gap?.missing} is missing while ${gap?.highest} is on a replica`)
      const k = records.length - 1
      assert.ok(k > last, `the guest kept writing: ${k} records after push ${round}, ${last} before`)
      last = k
      if (/VDREP-GUEST done/.test(guest!.console())) break
    }
    assert.ok(last >= 1000)
  })

  it('members frozen 300 ms apart still give one prefix: the first one holds its writes meanwhile', async function () {
    if (/VDREP-GUEST done/.test(guest!.console())) this.skip()
    const r = await vdrep(['push', '--group', 'vm1', ...disks, '--json'], {env: {VDREP_TEST_GROUP_CUT_STAGGER_MS: '300'}})
    assert.equal(r.code, 0, r.stderr)
    assert.ok(json<GroupPushResult>(r).heldMs >= 300, 'the first member held its writes while the second froze')
    const gap = firstGap(await readRecords(replicas))
    assert.equal(gap, null, `record ${gap?.missing} is missing while ${gap?.highest} is on a replica`)
  })

  it('the same staggered cut without the hold (a planted bug) leaves a gap the check sees', async function () {
    if (/VDREP-GUEST done/.test(guest!.console())) this.skip()
    const r = await vdrep(['push', '--group', 'vm1', ...disks], {env: {VDREP_TEST_GROUP_CUT_STAGGER_MS: '300', VDREP_TEST_PLANT_GROUP_NO_HOLD: '1'}})
    assert.equal(r.code, 0, r.stderr)
    assert.notEqual(firstGap(await readRecords(replicas)), null, 'without the hold, the guest writes across the two freezes')
  })

  it('two independent pushes of the same disks leave a gap the check sees (the test proves something)', async function () {
    if (/VDREP-GUEST done/.test(guest!.console())) this.skip()
    // Disk B is pushed after A: records the guest wrote to A meanwhile are not on A's replica,
    // while the later ones on B are.
    for (const d of disks) {
      const r = await vdrep(['push', d])
      assert.equal(r.code, 0, r.stderr)
    }
    const gap = firstGap(await readRecords(replicas))
    assert.notEqual(gap, null, 'independent pushes taken while the guest writes should not form one prefix')
  })
})
