// The members of a consistency group in a temp folder, for the group recovery tests: each a
// mixed disk initialised into the group `vm` with its replica under one receiver root, fully
// synced, and served through a running `vdrep track` (the "VM" writes with qemu-io).
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {collect, startVdrep, vdrep} from './cli.js'
import {qemuIo} from './cycle.js'
import {makeMixedDisk, tempDir} from './disks.js'
import {startTracker, type RunningTracker} from '../core/tracker/tracker-helpers.js'

const MiB = 1 << 20

export interface GroupMember {
  disk: string
  replica: string
  sock: string
}

export interface GroupFixture {
  dir: string
  root: string
  /** The running trackers (a test that stops them takes them out). */
  trackers: RunningTracker[]
}

/** A new fixture's folder and root; undo() stops its trackers and removes the folder. */
export async function groupFixture(): Promise<GroupFixture & {undo(): Promise<void>}> {
  const dir = await tempDir()
  const root = path.join(dir, 'r')
  await fs.mkdir(root)
  const trackers: RunningTracker[] = []
  return {
    dir,
    root,
    trackers,
    async undo() {
      for (const t of trackers.splice(0)) await t.stop('SIGTERM').catch(() => undefined)
      await fs.rm(dir, {recursive: true, force: true})
    },
  }
}

/**
 * A member named `name`: its disk, init into group `vm`, a full sync, and its tracker. `keepPoints`
 * (default): every point kept (the default retention's byte cap, 10% of a small disk, drops them).
 */
export async function groupMember(f: GroupFixture, name: string, o: {size?: number; keepPoints?: boolean} = {}): Promise<GroupMember> {
  const disk = path.join(f.dir, `${name}.img`)
  const replica = path.join(f.root, `${name}.img`)
  await makeMixedDisk(disk, o.size ?? 4 * MiB, name)
  assert.equal((await vdrep(['init', disk, '--to', replica, '--group', 'vm'])).code, 0)
  assert.equal((await vdrep(['fullsync', disk])).code, 0)
  if (o.keepPoints !== false) assert.equal((await vdrep(['points', replica, '--retention', 'count:50'])).code, 0)
  const sock = path.join(f.dir, `${name}.sock`)
  f.trackers.push(await startTracker(disk, ['--nbd', `unix:${sock}`]))
  return {disk, replica, sock}
}

/** The member's tracker export, for qemu-io. */
export const memberUri = (m: GroupMember) => `nbd+unix:///${path.basename(m.disk)}?socket=${m.sock}`

export const exists = (p: string) =>
  fs.stat(p).then(
    () => true,
    () => false,
  )

/**
 * Group point 1 of `a` and `b`, then a second group push killed (-9) after its group record is
 * written and its first member applied, the other member's bundle held: that member is returned.
 */
export async function groupPushKilledBetweenApplies(f: GroupFixture, a: GroupMember, b: GroupMember): Promise<GroupMember> {
  await qemuIo(memberUri(a), ['write -P 0x11 0 128k'])
  await qemuIo(memberUri(b), ['write -P 0x21 1M 64k'])
  assert.equal((await vdrep(['push', '--group', 'vm', a.disk, b.disk])).code, 0)
  await qemuIo(memberUri(a), ['write -P 0x12 0 1M'])
  await qemuIo(memberUri(b), ['write -P 0x22 0 1M'])
  // The second group push: the record is written, the first member applies, the others wait 5 s: killed then.
  const push = startVdrep(['push', '--group', 'vm', a.disk, b.disk], {env: {VDREP_TEST_GROUP_CRASH: 'after-first-apply'}})
  const pushed = collect(push)
  const held = async () => (await exists(`${a.replica}.vdrep-journal-held`)) || (await exists(`${b.replica}.vdrep-journal-held`))
  const deadline = Date.now() + 30_000
  while (!((await exists(path.join(f.root, '.vdrep-groups', 'vm', '0000000000000002.vdrep-group'))) && (await held()))) {
    assert.ok(Date.now() < deadline, 'the group push never reached its record')
    assert.equal(push.exitCode, null, 'the push ended before its record')
    await new Promise((r) => setTimeout(r, 50))
  }
  await new Promise((r) => setTimeout(r, 1500)) // the first member applies
  push.kill('SIGKILL')
  const killed = await pushed
  assert.equal(killed.signal, 'SIGKILL', `the push ended before the kill: ${killed.stdout}${killed.stderr}`)
  const heldMember = (await exists(`${b.replica}.vdrep-journal-held`)) ? b : a
  assert.ok(await exists(`${heldMember.replica}.vdrep-journal-held`), 'a member is held')
  return heldMember
}
