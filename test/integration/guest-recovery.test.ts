// A point boots (doc/guarantees.md): a real guest (qemu-system-x86_64, TCG) writes ordered
// records (record n only after record n-1 completed, O_DIRECT | O_SYNC) through `vdrep track`
// to a disk replicated over real sshd, and pushes are taken while it writes. Then:
//  - `vdrep test start --at` an older point, and a second guest booted from the view reads
//    exactly that point's records (a prefix, nothing newer), the same again after a delta push
//    of the source committed meanwhile, writes more into the view (and a planted gap, which its
//    reader must report: the check can fail); after `test stop` the replica equals the source
//    at the last push and `vdrep points` records the test;
//  - `vdrep failover --at` a point, and a third guest booted from the promoted disk (served by
//    its own `vdrep track`) reads exactly that point's records; the old source is fenced (12);
//  - a planned failover (guest shut down, `push --final`): a guest there reads every record.
// Guests boot under TCG (seconds each), so they share: the first guest also writes the planned
// failover's disk (a second virtio disk, a second writer at the same time), and one guest reads
// both promoted disks. Three boots instead of five; every check of the five stays.
import assert from 'node:assert/strict'
import path from 'node:path'
import {json} from '../helpers/cli.js'
import {MiB, sha256, SshCycle, type SshDisk} from '../helpers/cycle.js'
import {startForeground, type Foreground} from '../helpers/foreground.js'
import {bootGuest, buildInitramfs, firstGap, guestUnavailable, readRecords, type Guest} from '../helpers/guest.js'
import {APPEND_C, READER_C, readLine} from '../helpers/guest-reader.js'
import {startTracker, type RunningTracker} from '../core/tracker/tracker-helpers.js'
import type {PushResult} from '../../src/core/delta/push.js'
import type {FailoverResult} from '../../src/core/failover/failover.js'

/** Records the first guest writes (16 MiB holds 4096); pushes are taken after records 500, 1000 and 1500. */
const RECORDS = 3000
/** Records the first guest writes meanwhile to the planned failover's disk (8 MiB holds 2048). */
const PLANNED_RECORDS = 1000
const APPENDED = 50
/** How long the guest on the test view waits for the host's push before reading again. */
const AFTER_PUSH_S = 8
const PROGRAMS = {reader: READER_C, append: APPEND_C}

interface Point {
  seq: number
  /** The highest record on the replica after this push (records are 0..k). */
  k: number
}

describe('a point boots: a real guest reads a restore point through test start and after a failover', function () {
  this.timeout(900_000)
  let c: SshCycle
  let d: SshDisk
  /** The planned failover's disk, tracked from the start. */
  let e: SshDisk
  let eTracker: RunningTracker
  let writer: Guest
  const guests: Guest[] = []
  const others: Array<Foreground | RunningTracker> = []
  const pts: Point[] = []

  before(async function () {
    const why = await guestUnavailable()
    if (why) {
      if (process.env.CI) throw new Error(`the guest test cannot run: ${why}`)
      console.log(`      skipped: no guest can boot here: ${why}`)
      this.skip()
    }
    c = await SshCycle.start()
    d = await c.newDisk('guest', 16 * MiB)
    e = await c.newDisk('planned', 8 * MiB)
    // Keep every point: the default's byte share (10% of 16 MiB) would drop the older ones.
    const keep = await c.vdrep(['points', d.replica, '--retention', 'count:50'])
    assert.equal(keep.code, 0, keep.stderr)
  })
  after(async () => {
    for (const g of guests) await g.kill()
    for (const o of others) await o.stop('SIGKILL').catch(() => undefined)
    await c?.stop()
  })

  const boot = async (name: string, script: string, ...socks: string[]) => {
    const initramfs = path.join(c.dir, `${name}.cpio`)
    await buildInitramfs(initramfs, script, PROGRAMS)
    const g = await bootGuest(initramfs, socks)
    guests.push(g)
    return g
  }
  const push = async () => {
    const r = await c.vdrep(['push', d.disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    return json<PushResult & {seq: number}>(r)
  }
  /** The records on the replica file itself (read on the host): always a prefix {0..k}. */
  const replicaPrefix = async (what: string) => {
    const records = await readRecords([d.replica])
    const gap = firstGap(records)
    assert.equal(gap, null, `${what}: record ${gap?.missing} is missing while ${gap?.highest} is on the replica`)
    return records.length - 1
  }

  it('pushes taken while the guest writes each leave a prefix of its records on the replica', async () => {
    await c.track(d)
    eTracker = await c.track(e)
    // The planned failover's records go to /dev/vdb at the same time, their output to a file
    // (its "record N" lines would be taken for the first disk's); either writer failing fails
    // the script, so "exit 0" below covers both.
    const script = [
      `/bin/writer ${PLANNED_RECORDS} /dev/vdb >/tmp/planned.log 2>&1 &`,
      'planned=$!',
      `/bin/writer ${RECORDS} /dev/vda`,
      'r=$?',
      'wait $planned || { echo "VDREP-GUEST planned writer failed"; cat /tmp/planned.log; r=1; }',
      '[ $r = 0 ]',
    ].join('\n')
    const g = await boot('writer', script, d.sock, e.sock)
    writer = g
    for (const at of [500, 1000, 1500]) {
      await g.waitFor(new RegExp(`VDREP-GUEST record ${at}\\b`), 300_000)
      const r = await push()
      assert.equal(r.mode, 'delta')
      const k = await replicaPrefix(`push ${r.seq}`)
      assert.ok(k >= at, `push ${r.seq} after record ${at} holds records 0..${k}`)
      assert.ok(k > (pts.at(-1)?.k ?? -1), `the guest kept writing: 0..${k} after push ${r.seq}`)
      pts.push({seq: r.seq, k})
    }
    await g.waitFor(/VDREP-GUEST exit 0/, 300_000)
    assert.ok(pts.length >= 2, 'at least two points were taken while the guest wrote')
    assert.ok(pts[0].k < RECORDS - 1, `the first point was taken mid-write (0..${pts[0].k} of ${RECORDS})`)
  })

  it('a second guest boots from test start --at the first point, sees exactly its records, writes into the view; a delta push goes on', async () => {
    const p = pts[0]
    const sock = path.join(c.dir, 'view.nbd')
    const view = await startForeground(['test', 'start', d.replica, '--at', String(p.seq), '--nbd', `unix:${sock}`], /^testing point/, c.env)
    others.push(view)
    const gapAt = p.k + 10
    const g = await boot(
      'view',
      [
        '/bin/reader /dev/vda point',
        // The host pushes meanwhile; read again once that push has committed.
        `sleep ${AFTER_PUSH_S}`,
        '/bin/reader /dev/vda after-push',
        `/bin/append /dev/vda ${p.k + 1} ${p.k + 1 + APPENDED}`,
        '/bin/reader /dev/vda appended',
        // A planted gap (one record zeroed): the reader must say the records are not a prefix.
        `dd if=/dev/zero of=/dev/vda bs=4096 seek=${gapAt} count=1 2>/dev/null`,
        'sync',
        '/bin/reader /dev/vda gap',
      ].join('\n'),
      sock,
    )
    await g.waitFor(/VDREP-READ point /, 300_000)
    // Replication goes on while the guest runs on the view: the rest of the first guest's records.
    const during = await push()
    assert.equal(during.mode, 'delta', 'a push during a test is a delta')
    assert.equal(readLine(g.console(), 'after-push'), undefined, `the push took over ${AFTER_PUSH_S} s: the guest's second read did not follow it`)
    await g.waitFor(/VDREP-GUEST exit/, 300_000)
    const out = g.console()
    assert.deepEqual(readLine(out, 'point'), {highest: p.k, count: p.k + 1, prefix: true, missing: -1}, `the view of point ${p.seq}:\n${out}`)
    assert.deepEqual(readLine(out, 'after-push'), readLine(out, 'point'), 'a push committed to the replica does not move the view')
    const last = p.k + APPENDED
    assert.deepEqual(readLine(out, 'appended'), {highest: last, count: last + 1, prefix: true, missing: -1}, out)
    assert.deepEqual(readLine(out, 'gap'), {highest: last, count: last, prefix: false, missing: gapAt}, `the planted gap is seen:\n${out}`)

    const stop = await c.vdrep(['test', 'stop', d.replica, '--json'])
    assert.equal(stop.code, 0, stop.stderr)
    assert.equal((await view.exited).code, 0)
    // The replica is the source at the last push: the guest's writes into the view never reached it.
    assert.equal(await sha256(d.replica), await sha256(d.disk), 'the replica equals its source (idle since the first guest ended)')
    assert.equal(await replicaPrefix('after the test'), RECORDS - 1)
    pts.push({seq: during.seq, k: RECORDS - 1})
    const listed = json<{points: Array<{seq: number; tested: string | null}>}>(await c.vdrep(['points', d.replica, '--json']))
    assert.match(listed.points.find((x) => x.seq === p.seq)?.tested ?? '', /^\d{4}-\d{2}-\d{2}T/, 'vdrep points records the test')
  })

  // One guest reads both promoted disks (a boot is seconds under TCG): /dev/vda is the replica
  // promoted by `failover --at` a middle point, /dev/vdb the one promoted by a planned failover.
  it('after failover --at a middle point, and a planned failover (the guest shut down, push --final) of a second disk, a guest booted from the promoted disks sees exactly the point records and every planned one; the old sources are fenced', async () => {
    const p = pts[1]
    assert.ok(p.k < RECORDS - 1, 'the point is older than the last push')
    const fo = await c.vdrep(['failover', d.replica, '--at', String(p.seq), '--force', '--json'])
    assert.equal(fo.code, 0, fo.stderr)
    assert.equal(json<FailoverResult>(fo).rolledBackTo, p.seq)
    assert.equal(await replicaPrefix('after the rollback'), p.k)

    // The planned one: the first guest wrote this disk's records (/dev/vdb) and shut down (its
    // exit 0 covers both writers).
    assert.match(writer.console(), /VDREP-GUEST exit 0/)
    await writer.kill()
    assert.equal((await readRecords([e.disk])).length, PLANNED_RECORDS, 'the source holds every record')
    // A final push is refused while a tracker runs (a later write would be lost): stop it first.
    await c.untrack(eTracker)
    const fin = await c.vdrep(['push', e.disk, '--final'])
    assert.equal(fin.code, 0, fin.stderr)
    const pfo = await c.vdrep(['failover', e.replica, '--planned', '--json'])
    assert.equal(pfo.code, 0, pfo.stderr)
    assert.equal(json<FailoverResult>(pfo).lossWindowSeconds, 0)

    const rsock = path.join(c.dir, 'promoted.nbd')
    const rt = await startTracker(d.replica, ['--nbd', `unix:${rsock}`])
    others.push(rt)
    const psock = path.join(c.dir, 'planned-promoted.nbd')
    const prt = await startTracker(e.replica, ['--nbd', `unix:${psock}`])
    others.push(prt)
    const script = ['/bin/reader /dev/vda promoted', `/bin/append /dev/vda ${p.k + 1} ${p.k + 11}`, '/bin/reader /dev/vdb planned'].join('\n')
    const g = await boot('promoted', script, rsock, psock)
    await g.waitFor(/VDREP-GUEST exit/, 300_000)
    assert.deepEqual(readLine(g.console(), 'promoted'), {highest: p.k, count: p.k + 1, prefix: true, missing: -1}, g.console())
    assert.deepEqual(readLine(g.console(), 'planned'), {highest: PLANNED_RECORDS - 1, count: PLANNED_RECORDS, prefix: true, missing: -1}, g.console())
    assert.equal((await rt.stop('SIGTERM')).code, 0)
    assert.equal((await prt.stop('SIGTERM')).code, 0)
    // The VM ran on the promoted disk: its writes are there, after the point's records.
    assert.equal(await replicaPrefix('after the promoted guest'), p.k + 10)

    const sum = await sha256(d.replica)
    const x = await c.vdrep(['push', d.disk])
    assert.equal(x.code, 12, `a push from the old source after the failover: ${x.stdout}${x.stderr}`)
    assert.match(x.stderr, /promoted by a failover/)
    assert.equal(await sha256(d.replica), sum, 'the promoted disk is unchanged by the refused push')
    const px = await c.vdrep(['push', e.disk])
    assert.equal(px.code, 12, `a push from the old source after the planned failover: ${px.stdout}${px.stderr}`)
  })
})
