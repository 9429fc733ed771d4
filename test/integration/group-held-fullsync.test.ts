// A group push cut by kill -9 between its members' applies leaves a member's bundle held beside
// its replica, its group record written. If that member is then full-synced (its next run falls
// back to one, or the user runs it) the held bundle is of an older instant than the replica:
// settled afterwards (the next push, serve's start-up, failover --group) it was applied over the
// full sync's contents: the replica then held blocks of two instants (and failover --group
// promoted it so, exit 0). The full sync drops it, as it drops a leftover delta journal.
import assert from 'node:assert/strict'
import {json, vdrep} from '../helpers/cli.js'
import {filesEqual} from '../helpers/disks.js'
import {qemuIo} from '../helpers/cycle.js'
import {exists, groupFixture, groupPushKilledBetweenApplies, groupMember, memberUri, type GroupFixture} from '../helpers/group-fixture.js'

describe('a held group bundle older than a full sync of its member', function () {
  this.timeout(120_000)
  let f: GroupFixture & {undo(): Promise<void>}
  let root: string

  beforeEach(async () => {
    f = await groupFixture()
    ;({root} = f)
  })
  afterEach(() => f.undo())

  const member = (name: string) => groupMember(f, name, {keepPoints: false})
  const uri = memberUri

  it('is dropped, not applied over the full-synced replica by failover --group or the next push; that group point is not restorable', async () => {
    const a = await member('a')
    const b = await member('b')
    const h = await groupPushKilledBetweenApplies(f, a, b)

    // The held member's disk moves on over the held bundle's blocks, and the member is full-synced.
    await qemuIo(uri(h), ['write -P 0x33 0 512k'])
    const full = await vdrep(['fullsync', h.disk])
    assert.equal(full.code, 0, full.stderr)
    assert.ok(await filesEqual(h.replica, h.disk), 'the full sync is proved')
    // failover --group settles held bundles first: this one must not land on the full-synced replica.
    const fo = await vdrep(['failover', '--group', 'vm', '--root', root, '--force'])
    assert.ok(
      await filesEqual(h.replica, h.disk),
      `failover --group (exit ${fo.code}) applied the held bundle over the full-synced replica: a state the disk never had`,
    )
    assert.equal(fo.code, 2, `no group point has every member: ${fo.stdout}${fo.stderr}`)
    assert.equal(await exists(`${h.replica}.psf`), false, 'promoted')
    // The next push is a delta of its own; it does not make the group point it reuses the sequence of restorable.
    const next = await vdrep(['push', h.disk, '--json'])
    assert.equal(next.code, 0, next.stderr)
    assert.doesNotMatch(next.stdout, /full sync instead/)
    assert.ok(await filesEqual(h.replica, h.disk))
    const listed = json<{points: Array<{groupSeq: number; restorable: boolean}>}>(await vdrep(['points', '--group', 'vm', '--root', root, '--json']))
    assert.deepEqual(
      listed.points.map((p) => [p.groupSeq, p.restorable]),
      [
        [2, false],
        [1, false],
      ],
    )
  })
})
