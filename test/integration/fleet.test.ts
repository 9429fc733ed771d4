// Many disks from one config file: `fullsync --all` and `push --all --jobs 2` over three disks
// (two local replicas, one over SSH through a real sshd and receiver), one disk's failure not
// stopping the others, the exit code the highest of any disk, the config's settings written
// into each .psf in place (a delta still), a changed target refused, a bad file changing nothing.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json} from '../helpers/cli.js'
import {cmpEqual, MiB, SshCycle} from '../helpers/cycle.js'
import {makeMixedDisk, scribbleBlocks} from '../helpers/disks.js'
import {markChanged} from '../helpers/change-record.js'
import {PsfFile, psfPathFor} from '../../src/core/psf/psf-file.js'
import type {PushResult} from '../../src/core/delta/push.js'
import type {FleetRun} from '../../src/core/fleet/run-all.js'

const BS = 64 * 1024

describe('push --all: many disks from one config file', function () {
  this.timeout(180_000)
  let c: SshCycle
  let disks: string[]
  let replicas: string[]
  let conf: string
  let hookLog: string

  /** The config: two local replicas and one over SSH; a pre-hook logs when each push runs. */
  async function writeConfig(extra = ''): Promise<void> {
    const local = (i: number) => `[[disk]]\npath = "${disks[i]}"\ntarget = "${replicas[i]}"\n`
    await fs.writeFile(
      conf,
      `jobs = 1\n\n[defaults]\nrpo = "10m"\npre-hook = "echo in $VDREP_DISK >> ${hookLog}; sleep 0.4; echo out $VDREP_DISK >> ${hookLog}"\n\n` +
        `${local(0)}\n${local(1)}\n[[disk]]\npath = "${disks[2]}"\ngroup = "vm1"\n${extra}`,
    )
  }

  const run = (args: string[]) => c.vdrep([...args, '--config', conf])

  before(async () => {
    c = await SshCycle.start()
    conf = path.join(c.dir, 'vdrep.conf')
    hookLog = path.join(c.dir, 'hooks.log')
    await fs.mkdir(path.join(c.dir, 'local'))
    disks = []
    replicas = []
    for (const name of ['a', 'b']) {
      const disk = path.join(c.dir, `${name}.img`)
      await makeMixedDisk(disk, 8 * MiB, name)
      const replica = path.join(c.dir, 'local', `${name}.img`)
      const i = await c.vdrep(['init', disk, '--to', replica])
      assert.equal(i.code, 0, i.stderr)
      disks.push(disk)
      replicas.push(replica)
    }
    const remote = await c.newDisk('c', 8 * MiB, {fullsync: false})
    disks.push(remote.disk)
    replicas.push(remote.replica)
  })
  after(async () => {
    await c?.stop()
  })

  it('fullsync --all, then push --all --jobs 2: each disk a delta of exactly its changed blocks, two at a time', async () => {
    await writeConfig()
    const f = await run(['fullsync', '--all', '--jobs', '2'])
    assert.equal(f.code, 0, f.stderr)
    assert.equal(f.stdout.trim().split('\n').length, 4, `one line per disk and one for the run:\n${f.stdout}`)
    for (let i = 0; i < 3; i++) assert.ok(await cmpEqual(disks[i], replicas[i]), `replica ${i} after the full sync`)
    // The config's settings went into each .psf in place (RPO, group), and said so.
    assert.match(f.stderr, /settings from .*vdrep\.conf written into its \.psf \(the change record kept\): rpo 15m -> 10m/)
    const psf = await PsfFile.open(psfPathFor(disks[2]), false)
    const h = psf.header
    await psf.close()
    assert.equal(h.settings.rpoSeconds, 600)
    assert.equal(h.settings.group, 'vm1')

    const changed: number[][] = []
    for (let i = 0; i < 3; i++) {
      changed.push(await scribbleBlocks(disks[i], BS, 3 + i, `fleet-${i}`))
      await markChanged(disks[i], changed[i])
    }
    await fs.rm(hookLog, {force: true})
    const p = await run(['push', '--all', '--jobs', '2', '--json'])
    assert.equal(p.code, 0, p.stderr)
    const out = json<FleetRun<PushResult>>(p)
    assert.equal(out.jobs, 2)
    assert.equal(out.exitCode, 0)
    for (let i = 0; i < 3; i++) {
      const r = out.disks[i].result as PushResult
      assert.equal(r.mode, 'delta', `disk ${i} pushed a delta`)
      assert.equal(r.blocks, changed[i].length, `disk ${i} sent exactly its changed blocks`)
      assert.ok(await cmpEqual(disks[i], replicas[i]), `replica ${i} after the push`)
    }
    // Two pushes overlapped, never three.
    let now = 0
    let most = 0
    for (const line of (await fs.readFile(hookLog, 'utf8')).trim().split('\n')) {
      now += line.startsWith('in ') ? 1 : -1
      most = Math.max(most, now)
    }
    assert.equal(most, 2, 'two disks at once with --jobs 2')
  })

  it('a shared bandwidth budget: two pushes under it take about twice as long as one alone', async () => {
    // Two local disks, 2 MiB changed on each, a 1 MiB/s budget shared by the pushes running at once.
    // Under one budget the two end 4 s after the first starts whatever the gap between their
    // starts, so the slower takes 2x one alone unless the second starts after the first ended:
    // a 1 MiB/s budget leaves 2 s for the second's start (a loaded host's connect), 4 MiB/s left 0.5 s.
    const only = async (which: number[]) => {
      const text = which.map((i) => `[[disk]]\npath = "${disks[i]}"\ntarget = "${replicas[i]}"\n`).join('\n')
      await fs.writeFile(conf, `jobs = 2\nbandwidth-budget = "1M"\n\n${text}`)
      for (const i of which) await markChanged(disks[i], await scribbleBlocks(disks[i], BS, 32, `budget-${i}-${Date.now()}`))
      const p = await run(['push', '--all', '--json'])
      assert.equal(p.code, 0, p.stderr)
      const out = json<FleetRun<PushResult>>(p)
      assert.equal(out.budgetBytesPerSecond, 1 << 20)
      // The send phase is what the budget paces (connect and commit are not).
      return out.disks.map((d) => ((d.result as PushResult).phases?.sendMs ?? NaN) / 1000)
    }
    const [alone] = await only([0])
    const together = await only([0, 1])
    const ratio = Math.max(...together) / alone
    // Loose: the machine is shared; the unit test (shared-budget.test.ts) measures it closely.
    assert.ok(ratio > 1.4, `alone ${alone.toFixed(2)} s, together ${together.map((x) => x.toFixed(2)).join(' and ')} s: ratio ${ratio.toFixed(2)}`)
    console.log(
      `      budget 1 MiB/s, 2 MiB each, send phase: one push ${alone.toFixed(2)} s, two at once ${together.map((x) => x.toFixed(2)).join(' s and ')} s (ratio ${ratio.toFixed(2)})`,
    )
    // Together they stay under the one budget: 4 MiB less the quarter second's burst a budget
    // may hold, over the time both took (each under a budget of its own: about 2 MiB/s).
    const rate = (4 * MiB - MiB / 4) / Math.max(...together)
    assert.ok(rate < MiB * 1.15, `the two pushes sent at ${(rate / MiB).toFixed(2)} MiB/s under a 1 MiB/s budget`)
    for (const i of [0, 1]) assert.ok(await cmpEqual(disks[i], replicas[i]))
  })

  it("one disk's failure does not stop the others; the exit code is the highest; nothing printed for disks not due without a TTY", async () => {
    const missing = path.join(c.dir, 'never-initialised.img')
    await makeMixedDisk(missing, 1 * MiB, 'x')
    await writeConfig(`\n[[disk]]\npath = "${missing}"\n`)
    for (let i = 0; i < 3; i++) await markChanged(disks[i], await scribbleBlocks(disks[i], BS, 2, `fail-${i}`))
    await c.serve.stop() // the SSH disk's receiver is gone: exit 7 for it
    try {
      const p = await run(['push', '--all', '--jobs', '2'])
      assert.equal(p.code, 7, `the highest exit code (7 connection > 2 not initialised): ${p.stdout}\n${p.stderr}`)
      assert.match(p.stderr, new RegExp(`push ${missing}: failed \\(exit 2, PSF_MISSING\\)`))
      assert.match(p.stderr, new RegExp(`push ${disks[2]}: failed \\(exit 7, `))
      for (const i of [0, 1]) {
        assert.match(p.stdout, new RegExp(`push ${disks[i]} -> .*sequence \\d+ committed`))
        assert.ok(await cmpEqual(disks[i], replicas[i]), `local replica ${i} pushed despite the failures`)
      }
      assert.match(p.stdout, /push --all: 4 disks .* 2 done, 2 failed \(exit 7, the highest of any disk\)/)
      // `status` with no disk lists the configured ones, the failed push shown.
      const s = await run(['status', '--json'])
      const rows = json<{disks: Array<{disk: string; state: string}>}>(s).disks
      assert.deepEqual(
        rows.map((r) => r.disk),
        [...disks, missing],
      )
      assert.equal(rows[2].state, 'Push failed')
    } finally {
      await c.serve.start()
    }
    await writeConfig()
    const again = await run(['push', '--all'])
    assert.equal(again.code, 0, again.stderr)
    assert.ok(await cmpEqual(disks[2], replicas[2]), 'the blocks of the failed push went back to the record and arrived now')
    const due = await run(['push', '--all', '--if-due'])
    assert.equal(due.code, 0, due.stderr)
    assert.equal(due.stdout, '', 'cron mails nothing when no disk was due')
  })

  it('a target in the config that differs from the .psf is refused for that disk, never applied silently', async () => {
    await writeConfig()
    const text = (await fs.readFile(conf, 'utf8')).replace(`target = "${replicas[1]}"`, `target = "${replicas[1]}.new"`)
    await fs.writeFile(conf, text)
    const before = await fs.readFile(psfPathFor(disks[1]))
    const p = await run(['push', '--all'])
    assert.equal(p.code, 2, p.stderr)
    assert.match(p.stderr, /vdrep\.conf:\d+: .*b\.img is to replicate to .*b\.img\.new, but its \.psf replicates to .*b\.img: not pushed/)
    assert.match(p.stderr, /hint: to move it to the new replica .*vdrep config .* target /)
    assert.ok((await fs.readFile(psfPathFor(disks[1]))).equals(before), 'its .psf untouched')
    await assert.rejects(fs.stat(`${replicas[1]}.new`), 'nothing sent to the new target')
  })

  it('a bad config file changes nothing and names the file and line (exit 2)', async () => {
    await writeConfig()
    const before = await Promise.all(disks.map((d) => fs.readFile(psfPathFor(d))))
    const cases: Array<[string, RegExp]> = [
      [(await fs.readFile(conf, 'utf8')).replace('rpo = "10m"', 'rpo = "10"'), /vdrep\.conf:4: rpo: cannot read '10' as a duration \(a number needs a unit\)/],
      [(await fs.readFile(conf, 'utf8')).replace('rpo = "10m"', 'rpo = "1m"'), /vdrep\.conf:4: rpo: 1m is outside 5m\.\.24h/],
      [(await fs.readFile(conf, 'utf8')).replace('group = "vm1"', 'group = "vm1"\ncolour = "red"'), /vdrep\.conf:\d+: no setting named 'colour'/],
      [(await fs.readFile(conf, 'utf8')).replace('[defaults]', '[defaults'), /vdrep\.conf:3: not valid TOML/],
      [(await fs.readFile(conf, 'utf8')) + `\n[[disk]]\npath = "${disks[0]}"\n`, /is listed twice/],
      [(await fs.readFile(conf, 'utf8')).replace('jobs = 1', 'jobs = 0'), /vdrep\.conf:1: jobs: 0 is outside 1\.\.64/],
    ]
    for (const [text, message] of cases) {
      await fs.writeFile(conf, text)
      const p = await run(['push', '--all'])
      assert.equal(p.code, 2, `${message}: ${p.stderr}`)
      assert.match(p.stderr, message)
      const s = await run(['status'])
      assert.equal(s.code, 2, 'status refuses the bad file too')
    }
    const after = await Promise.all(disks.map((d) => fs.readFile(psfPathFor(d))))
    for (let i = 0; i < 3; i++) assert.ok(after[i].equals(before[i]), `the .psf of disk ${i} untouched`)
    const missing = await c.vdrep(['push', '--all', '--config', path.join(c.dir, 'nope.conf')])
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /no config file at .*nope\.conf/)
  })
})
