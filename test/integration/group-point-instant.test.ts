// A group point is one instant across the members. A member replica full-synced since the point
// (alone, as GROUP_MEMBER_FULL_SYNC tells the user to, or handed to another source with
// --take-over-replica) keeps its push sequence, so the group record's sequence for it now names
// the full sync's contents: reading, exporting or failing over the group at that point would mix
// two instants with exit 0. Such a point is no longer restorable; the next group push is.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {collect, json, startVdrep, vdrep} from '../helpers/cli.js'
import {filesEqual, makeMixedDisk} from '../helpers/disks.js'
import {qemuIo} from '../helpers/cycle.js'
import {groupFixture, groupMember, memberUri, type GroupFixture, type GroupMember} from '../helpers/group-fixture.js'
import type {GroupFailoverResult} from '../../src/core/group/failover-group.js'

const MiB = 1 << 20

describe('a group point of a member full-synced since is not restored', function () {
  this.timeout(120_000)
  let f: GroupFixture & {undo(): Promise<void>}
  let dir: string
  let root: string

  beforeEach(async () => {
    f = await groupFixture()
    ;({dir, root} = f)
  })
  afterEach(() => f.undo())

  type Member = GroupMember
  const member = (name: string, size?: number) => groupMember(f, name, {size})
  const uri = memberUri
  const promoted = async (m: Member) =>
    await fs.stat(`${m.replica}.psf`).then(
      () => true,
      () => false,
    )
  const groupPush = async (a: Member, b: Member) => {
    const r = await vdrep(['push', '--group', 'vm', a.disk, b.disk])
    assert.equal(r.code, 0, r.stderr)
  }
  /** export --group into a new folder: refused (2), or every copy equal to `want`'s file for it. */
  const exportRefusedOrEqual = async (at: string[], want: (m: Member) => string, ms: Member[]) => {
    const out = path.join(dir, `restore-${Math.random().toString(16).slice(2)}`)
    const r = await vdrep(['export', '--group', 'vm', '--root', root, ...at, '--to', out])
    if (r.code === 2) return r
    assert.equal(r.code, 0, r.stderr)
    for (const m of ms)
      assert.ok(await filesEqual(path.join(out, path.basename(m.replica)), want(m)), `export --group: ${m.replica}'s copy is not the group point`)
    return r
  }

  it('a member full-synced alone after the point: export --group and failover --group refuse that point, nothing promoted; the next group push is restorable', async () => {
    const a = await member('a')
    const b = await member('b')
    await qemuIo(uri(a), ['write -P 0x11 0 256k'])
    await qemuIo(uri(b), ['write -P 0x21 0 256k'])
    await groupPush(a, b)
    for (const m of [a, b]) await fs.copyFile(m.replica, `${m.replica}.at1`)
    // a alone moves on by a full sync (its record in doubt, say): its replica keeps its sequence.
    await qemuIo(uri(a), ['write -P 0x12 0 1M'])
    assert.equal((await vdrep(['fullsync', a.disk])).code, 0)
    assert.ok(!(await filesEqual(a.replica, `${a.replica}.at1`)))

    const newest = await exportRefusedOrEqual([], (m) => `${m.replica}.at1`, [a, b])
    assert.equal(newest.code, 2, 'group point 1 is no longer one instant')
    assert.match(newest.stderr, /GROUP_NO_POINT|no point/)
    assert.equal((await exportRefusedOrEqual(['--at', '1'], (m) => `${m.replica}.at1`, [a, b])).code, 2)
    const listed = json<{points: Array<{groupSeq: number; restorable: boolean}>}>(await vdrep(['points', '--group', 'vm', '--root', root, '--json']))
    assert.deepEqual(
      listed.points.map((p) => [p.groupSeq, p.restorable]),
      [[1, false]],
    )

    const fo = await vdrep(['failover', '--group', 'vm', '--root', root, '--force'])
    assert.equal(fo.code, 2, `failover --group promoted a point that mixes two instants: ${fo.stdout}${fo.stderr}`)
    assert.equal(await promoted(a), false)
    assert.equal(await promoted(b), false)

    // The next group push is a point of its own, restorable as ever.
    await qemuIo(uri(b), ['write -P 0x22 1M 64k'])
    await groupPush(a, b)
    const next = await exportRefusedOrEqual([], (m) => m.disk, [a, b])
    assert.equal(next.code, 0, next.stderr)
    const r = await vdrep(['failover', '--group', 'vm', '--root', root, '--force', '--json'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(json<GroupFailoverResult>(r).groupSeq, 2)
    for (const m of [a, b]) assert.ok(await filesEqual(m.disk, m.replica))
  })

  it('a member full-synced while export --group copies the one before it: the export fails rather than copy the full sync as the point', async () => {
    const a = await member('a', 192 * MiB)
    const b = await member('b')
    await qemuIo(uri(a), ['write -P 0x51 0 256k'])
    await qemuIo(uri(b), ['write -P 0x61 0 256k'])
    await groupPush(a, b)
    for (const m of [a, b]) await fs.copyFile(m.replica, `${m.replica}.at1`)
    await qemuIo(uri(b), ['write -P 0x62 0 1M'])
    const out = path.join(dir, 'restore')
    const exp = startVdrep(['export', '--group', 'vm', '--root', root, '--at', '1', '--to', out])
    const exported = collect(exp)
    // Held (SIGSTOP) once its record names a as being copied: the point was checked, b not yet copied.
    const manifest = path.join(out, '.vdrep-export-group.json')
    while (!(await fs.readFile(manifest, 'utf8').catch(() => '')).includes('copying')) {
      assert.equal(exp.exitCode, null, 'the export ended before it was held')
      await new Promise((r) => setTimeout(r, 2))
    }
    exp.kill('SIGSTOP')
    try {
      assert.ok(!(await fs.stat(path.join(out, 'b.img')).catch(() => undefined)), 'b was copied before the export was held')
      const full = await vdrep(['fullsync', b.disk])
      assert.equal(full.code, 0, full.stderr)
    } finally {
      exp.kill('SIGCONT')
    }
    const r = await exported
    if (r.code === 0)
      for (const m of [a, b])
        assert.ok(await filesEqual(path.join(out, path.basename(m.replica)), `${m.replica}.at1`), `${m.replica}'s copy is not group point 1`)
    assert.notEqual(r.code, 0, 'b was full-synced during the export: point 1 is no longer one instant')
  })

  it("a member full-synced while failover --group promotes the one before it: not promoted at the full sync's contents", async () => {
    const a = await member('a', 192 * MiB)
    const b = await member('b')
    await qemuIo(uri(a), ['write -P 0x81 0 256k'])
    await qemuIo(uri(b), ['write -P 0x91 0 256k'])
    await groupPush(a, b)
    for (const m of [a, b]) await fs.copyFile(m.replica, `${m.replica}.at1`)
    // a alone moves on by much (its rollback to group point 1 takes a while); so does b's disk.
    await qemuIo(uri(a), ['write -P 0x82 0 96M'])
    assert.equal((await vdrep(['push', a.disk])).code, 0)
    await qemuIo(uri(b), ['write -P 0x92 0 1M'])
    const fo = startVdrep(['failover', '--group', 'vm', '--root', root, '--at', '1', '--force'])
    const failed = collect(fo)
    // Held (SIGSTOP) once a is recorded as promoted (its rollback runs next): b checked, not yet promoted.
    while (!(await fs.readFile(`${a.replica}.vdrep`, 'utf8').catch(() => '')).includes('"promoted"')) {
      assert.equal(fo.exitCode, null, 'the failover ended before it was held')
      await new Promise((r) => setTimeout(r, 2))
    }
    fo.kill('SIGSTOP')
    try {
      assert.equal(await promoted(b), false, 'b was promoted before the failover was held')
      const full = await vdrep(['fullsync', b.disk])
      assert.equal(full.code, 0, full.stderr)
    } finally {
      fo.kill('SIGCONT')
    }
    const r = await failed
    if (r.code === 0 || (await promoted(b)))
      assert.ok(await filesEqual(b.replica, `${b.replica}.at1`), `b promoted (exit ${r.code}) at the full sync's contents, not group point 1`)
    assert.notEqual(r.code, 0)
  })

  it('a member replica handed to another source since the point (--take-over-replica): export --group refuses that point', async () => {
    const a = await member('a')
    const b = await member('b')
    await qemuIo(uri(a), ['write -P 0x31 0 256k'])
    await qemuIo(uri(b), ['write -P 0x41 0 256k'])
    await groupPush(a, b)
    for (const m of [a, b]) await fs.copyFile(m.replica, `${m.replica}.at1`)
    // Another disk takes a's replica over (a new replica id, the same sequence).
    const c = path.join(dir, 'c.img')
    await makeMixedDisk(c, 4 * MiB, 'c')
    assert.equal((await vdrep(['init', c, '--to', a.replica])).code, 0)
    const took = await vdrep(['fullsync', c, '--take-over-replica'])
    assert.equal(took.code, 0, took.stderr)
    assert.ok(await filesEqual(c, a.replica))
    const r = await exportRefusedOrEqual(['--at', '1'], (m) => `${m.replica}.at1`, [a, b])
    assert.equal(r.code, 2, 'a is another source now')
  })
})
