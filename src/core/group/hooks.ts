// A group push's hooks around its cut: each member's pre-hook before the writes are held, its
// post-hook after, as a lone push runs them around its freeze. The disks of one VM usually share
// one hook (freeze and thaw the guest's file systems through its agent), and freezing a guest
// twice fails, so each distinct command runs once: VDREP_DISK names the first member that gives
// it, VDREP_DISKS every such member (one per line) and VDREP_GROUP the group. A pre-hook that
// fails stops the push before the cut, after the post-hooks of the members already pre-hooked
// have run (what was frozen is thawed); the post-hooks run whether or not the cut succeeded.
import {runHook} from '../sync/hooks.js'

export interface MemberHooks {
  disk: string
  pre?: string
  post?: string
}

/** Distinct commands in member order, each with the members that give it. */
function distinct(members: MemberHooks[], which: 'pre' | 'post'): Array<{command: string; disks: string[]}> {
  const out = new Map<string, string[]>()
  for (const m of members) {
    const c = m[which]
    if (c) out.set(c, [...(out.get(c) ?? []), m.disk])
  }
  return [...out].map(([command, disks]) => ({command, disks}))
}

async function runEach(group: string, hooks: Array<{command: string; disks: string[]}>, phase: 'pre' | 'post'): Promise<void> {
  for (const h of hooks) await runHook(h.command, phase, h.disks[0], {VDREP_GROUP: group, VDREP_DISKS: h.disks.join('\n')})
}

/** Every post-hook runs, even after one fails; the first failure is thrown at the end. */
async function runAllPosts(group: string, members: MemberHooks[]): Promise<void> {
  let first: unknown
  for (const h of distinct(members, 'post')) await runEach(group, [h], 'post').catch((err: unknown) => (first ??= err))
  if (first !== undefined) throw first
}

export async function aroundGroupCut<T>(group: string, members: MemberHooks[], cut: () => Promise<T>): Promise<T> {
  const pres = distinct(members, 'pre')
  for (let i = 0; i < pres.length; i++) {
    try {
      await runEach(group, [pres[i]], 'pre')
    } catch (err) {
      const hooked = new Set(pres.slice(0, i).flatMap((p) => p.disks))
      await runAllPosts(
        group,
        members.filter((m) => hooked.has(m.disk)),
      ).catch(() => {}) // the pre-hook's failure is the one reported
      throw err
    }
  }
  let result: T
  try {
    result = await cut()
  } catch (err) {
    await runAllPosts(group, members).catch(() => {}) // the cut's failure is the one reported
    throw err
  }
  await runAllPosts(group, members)
  return result
}
