// The crontab line `vdrep init` prints is run by cron through `sh`: whatever the disk is named,
// it must reach vdrep as one argument and nothing in the name may run.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, vdrep} from '../helpers/cli.js'
import {filesEqual, makeMixedDisk, tempDir} from '../helpers/disks.js'
import {cronLine} from '../../src/core/init.js'

const MiB = 1 << 20

/** What cron hands to `sh -c`: the line after its five time fields, each `\%` made `%`. */
function cronCommandOf(line: string): string {
  const m = /^(\S+ ){5}(.*)$/.exec(line)
  assert.ok(m, `not a crontab line: ${line}`)
  const field = m[2]
  // An unescaped % would end the command there (the rest becomes its stdin).
  assert.doesNotMatch(field.replaceAll('\\%', ''), /%/, `an unescaped % in: ${field}`)
  return field.replaceAll('\\%', '%')
}

describe('vdrep init: the crontab line', function () {
  this.timeout(60_000)
  let dir: string

  beforeEach(async () => {
    dir = await tempDir()
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('a disk named with $(…), a space and % runs `push --if-due` on that disk, and nothing else', async () => {
    const folder = path.join(dir, 'my vms 100%')
    await fs.mkdir(folder)
    const disk = path.join(folder, "q$(touch X) it's 50%.img")
    const replica = path.join(dir, 'replica.img')
    await makeMixedDisk(disk, 2 * MiB)
    const init = await vdrep(['init', disk, '--to', replica, '--json'])
    assert.equal(init.code, 0, init.stderr)
    const command = cronCommandOf(json<{cron: string}>(init).cron)
    // cron runs the command from the user's home, with a bare environment.
    const r = spawnSync('sh', ['-c', command], {cwd: dir, encoding: 'utf8', env: {HOME: dir, LANG: 'C'}})
    assert.equal(r.status, 0, `${command}\n${r.stdout}\n${r.stderr}`)
    assert.match(r.stdout, /full sync instead/, 'the never-synced disk was pushed')
    assert.ok(await filesEqual(disk, replica), 'the replica equals the disk the line names')
    for (const where of [dir, folder, process.cwd()]) {
      await assert.rejects(fs.stat(path.join(where, 'X')), `the $(touch X) in the name ran (in ${where})`)
    }
  })

  it('quotes the node and entry paths too, and refuses a line break (no crontab line can hold one)', () => {
    const line = cronLine('/vm/a b.img', '/opt/my node/bin/node', '/opt/v%drep/bin/run.js')
    assert.equal(
      line,
      "* * * * * PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin '/opt/my node/bin/node' '/opt/v\\%drep/bin/run.js' push --if-due '/vm/a b.img'",
    )
    assert.throws(() => cronLine('/vm/a\nb.img', '/usr/bin/node', '/x/run.js'), /line break/)
  })

  it('init refuses a disk whose path holds a line break (exit 2)', async () => {
    const disk = path.join(dir, 'a\nb.img')
    await makeMixedDisk(disk, MiB)
    const r = await vdrep(['init', disk, '--to', path.join(dir, 'replica.img')])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /line break/)
    await assert.rejects(fs.stat(`${disk}.psf`))
  })
})
