// A group push cut by kill -9 between its members' applies leaves one member's bundle held
// (`<replica>.vdrep-journal-held`) while its group record is written. `failover --group`
// settles it first (the record names it: applied) and promotes every member at that newest
// group point. No held bundle may land on a promoted replica afterwards: the old primary's next
// cron push (refused as FENCED) settles held bundles first, and would apply one over the
// promoted disk, leaving that member one group point ahead of the others.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import {json, vdrep} from '../helpers/cli.js'
import {filesEqual} from '../helpers/disks.js'
import {qemuIo} from '../helpers/cycle.js'
import type {RunningTracker} from '../core/tracker/tracker-helpers.js'
import {exists, groupFixture, groupPushKilledBetweenApplies, groupMember, memberUri, type GroupFixture} from '../helpers/group-fixture.js'
import type {GroupFailoverResult} from '../../src/core/group/failover-group.js'

describe('failover --group after a group push killed between member applies', function () {
  this.timeout(120_000)
  let f: GroupFixture & {undo(): Promise<void>}
  let root: string
  let trackers: RunningTracker[]

  beforeEach(async () => {
    f = await groupFixture()
    ;({root, trackers} = f)
  })
  afterEach(() => f.undo())

  const member = (name: string) => groupMember(f, name)
  const uri = memberUri

  it('leaves no held bundle that a later push applies over a promoted member', async () => {
    const a = await member('a')
    const b = await member('b')
    const heldMember = await groupPushKilledBetweenApplies(f, a, b)

    const r = await vdrep(['failover', '--group', 'vm', '--root', root, '--force', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = json<GroupFailoverResult>(r)
    // Group point 2 was committed (its record written): the held bundle is applied first, so
    // the failover keeps that newest point, with every member at it (the sources have not
    // been written since).
    assert.equal(out.groupSeq, 2, `failed over to group point ${out.groupSeq}: the held member's committed bundle was not settled first`)
    for (const m of [a, b]) assert.ok(await filesEqual(m.replica, m.disk), `${m.replica} is not at group point 2`)
    const before = [await fs.readFile(a.replica), await fs.readFile(b.replica)]
    assert.equal(await exists(`${heldMember.replica}.vdrep-journal-held`), false, 'the failover left a held bundle beside a promoted replica')
    // The old primary's cron push: fenced, and it must not write the promoted replica.
    for (const t of trackers.splice(0)) await t.stop('SIGTERM')
    const late = await vdrep(['push', heldMember.disk])
    assert.notEqual(late.code, 0)
    assert.ok((await fs.readFile(a.replica)).equals(before[0]), 'a promoted replica was written after its failover')
    assert.ok((await fs.readFile(b.replica)).equals(before[1]), 'a promoted replica was written after its failover')
  })
  it('--planned refuses, changing nothing, when a member was promoted by hand at another point than its final push', async () => {
    const a = await member('a')
    const b = await member('b')
    await qemuIo(uri(a), ['write -P 0x31 0 256k'])
    await qemuIo(uri(b), ['write -P 0x41 0 256k'])
    assert.equal((await vdrep(['push', '--group', 'vm', a.disk, b.disk])).code, 0)
    await qemuIo(uri(a), ['write -P 0x32 1M 64k'])
    for (const t of trackers.splice(0)) await t.stop('SIGTERM')
    for (const m of [a, b]) assert.equal((await vdrep(['push', m.disk, '--final'])).code, 0)
    // a promoted by hand, rolled back to its group point 1 (sequence 1: the full sync is 0), not at its final push.
    const byHand = await vdrep(['failover', a.replica, '--at', '1', '--force'])
    assert.equal(byHand.code, 0, byHand.stderr)
    const r = await vdrep(['failover', '--group', 'vm', '--root', root, '--planned'])
    assert.equal(r.code, 2, `a at sequence 1 and b at its final push were reported as one planned group failover: ${r.stdout}`)
    assert.equal(await exists(`${b.replica}.psf`), false, 'b was promoted')
  })
})
