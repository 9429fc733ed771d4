// The fleet config file: what a good file gives (defaults under each disk's own keys, paths
// against the file's folder, jobs and the budget), and that every bad one is refused naming
// the file and the line, before any disk is touched.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {configPath, loadConfig, parseConfig} from '../../../src/core/fleet/config-file.js'
import {desiredSettings} from '../../../src/core/fleet/reconcile.js'
import {tempDir} from '../../helpers/disks.js'

const GOOD = `# two disks
jobs = 3
bandwidth-budget = "100M"

[defaults]
identity = ["keys/id_a", "/root/.ssh/id_b"]
rpo = "1h30m"
bandwidth = "50M/s"

[[disk]]
path = "vm/web.img"
target = "backup@dr1:2222:/srv/web.img"
group = "web"

[[disk]]
path = "/vm/db.img"
rpo = "5m"
pre-hook = "fsfreeze -f /mnt"
`

describe('fleet config file', () => {
  it('reads disks, defaults under their own keys, paths against the file, jobs and the budget', async () => {
    const c = await parseConfig(GOOD, '/etc/vdrep/vdrep.conf')
    assert.equal(c.jobs, 3)
    assert.equal(c.budgetBytesPerSecond, 100 * 1024 * 1024)
    assert.deepEqual(
      c.disks.map((d) => [d.disk, d.line]),
      [
        ['/etc/vdrep/vm/web.img', 10],
        ['/vm/db.img', 15],
      ],
    )
    const base = {target: '/old/replica.img', rpoSeconds: 900, fullsyncPort: 31031, deltaPort: 44046}
    const db = desiredSettings(c.disks[1], base)
    assert.equal(db.rpoSeconds, 300, "the disk's own key wins over the default")
    assert.equal(db.target, '/old/replica.img', 'a key the file does not name stays as the .psf has it')
    assert.deepEqual(db.ssh?.identityFiles, ['/etc/vdrep/keys/id_a', '/root/.ssh/id_b'])
    assert.equal(db.bwlimitBytesPerSecond, 50 * 1024 * 1024)
    assert.equal(db.preHook, 'fsfreeze -f /mnt')
    const web = desiredSettings(c.disks[0], base)
    assert.equal(web.rpoSeconds, 5400)
    assert.equal(web.target, 'backup@dr1:2222:/srv/web.img')
    assert.equal(web.group, 'web')
  })

  it('refuses a bad file naming the file and line', async () => {
    const cases: Array<[string, RegExp]> = [
      [GOOD.replace('rpo = "1h30m"', 'rpo = 15'), /^f\.conf:7: rpo: cannot read '15' as a duration \(a number needs a unit\)$/],
      [GOOD.replace('jobs = 3', 'jobs = 65'), /^f\.conf:2: jobs: 65 is outside 1\.\.64$/],
      [GOOD.replace('jobs = 3', 'jobs = "3"'), /^f\.conf:2: jobs: give a whole number$/],
      [GOOD.replace('bandwidth-budget = "100M"', 'bandwidth-budget = "lots"'), /^f\.conf:3: bandwidth-budget: cannot read 'lots' as a size$/],
      [GOOD.replace('group = "web"', 'group = "web farm"'), /^f\.conf:13: group: 'web farm' is not a group name$/],
      [GOOD.replace('group = "web"', 'colour = "red"'), /^f\.conf:13: no setting named 'colour'$/],
      [GOOD.replace('group = "web"', 'block-size = "4k"'), /^f\.conf:13: block-size shapes the change record itself/],
      [GOOD.replace('target = "backup@dr1:2222:/srv/web.img"', 'target = "backup@dr1:99999:/srv/web.img"'), /^f\.conf:12: bad SSH port 99999/],
      [GOOD.replace('pre-hook = "fsfreeze -f /mnt"', 'pre-hook = ["a", "b"]'), /^f\.conf:18: pre-hook: give a string or a number$/],
      [GOOD.replace('path = "/vm/db.img"', 'path = ""'), /^f\.conf:15: disk 2: no path/],
      [GOOD.replace('path = "/vm/db.img"', 'path = "vm/web.img"'), /^f\.conf:15: the disk \/tmp\/vm\/web\.img is listed twice \(first at line 10\)$/],
      [GOOD.replace('[defaults]', '[defaults'), /^f\.conf:5: not valid TOML/],
      [GOOD + '\nverbose = true\n', /^f\.conf:\d+: no setting named 'verbose'$/],
      ['speed = 1\n', /^f\.conf:1: unknown key 'speed'$/],
      [GOOD.replace('rpo = "5m"', 'rpo = "5m"\nfullsync-port = 44046'), /^f\.conf:\d+: \/vm\/db\.img: the full-sync port and the delta port are both 44046$/],
      [
        GOOD.replace('target = "backup@dr1:2222:/srv/web.img"', 'target = "/r/web.img"\nssh-user = "x"'),
        /^f\.conf:13: .*web\.img: ssh-user: the target \/r\/web\.img is a local path/,
      ],
    ]
    for (const [text, message] of cases) {
      await assert.rejects(parseConfig(text, '/tmp/f.conf'), (err: Error & {code?: string}) => {
        assert.equal(err.code, 'CONFIG_INVALID', err.message)
        assert.match(err.message.replace('/tmp/', ''), message)
        return true
      })
    }
  })

  it('finds the file: --config, else VDREP_CONFIG, else the default, whose absence is no error', async () => {
    const dir = await tempDir()
    const saved = process.env.VDREP_CONFIG
    try {
      delete process.env.VDREP_CONFIG
      assert.deepEqual(configPath(), {file: '/etc/vdrep/vdrep.conf', named: false})
      process.env.VDREP_CONFIG = path.join(dir, 'env.conf')
      assert.deepEqual(configPath(), {file: path.join(dir, 'env.conf'), named: true})
      assert.deepEqual(configPath('x.conf'), {file: path.resolve('x.conf'), named: true})
      await assert.rejects(loadConfig(), /no config file at .*env\.conf/)
      await fs.writeFile(path.join(dir, 'env.conf'), '')
      assert.deepEqual((await loadConfig())?.disks, [])
      await fs.writeFile(path.join(dir, 'big.conf'), Buffer.alloc(2 << 20, 0x23))
      await assert.rejects(loadConfig(path.join(dir, 'big.conf')), /more than a config file may be/)
    } finally {
      if (saved === undefined) delete process.env.VDREP_CONFIG
      else process.env.VDREP_CONFIG = saved
      await fs.rm(dir, {recursive: true, force: true})
    }
  })
})
