// The `vdrep` executable as a user's PATH runs it: bin/run.js through its shebang, directly and
// through a symlink (what `npm install -g` makes), without paying for NODE_EXTRA_CA_CERTS.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {pathToFileURL} from 'node:url'
import {VDREP_BIN} from '../helpers/cli.js'
import {tempDir} from '../helpers/disks.js'

describe('the vdrep executable (bin/run.js)', function () {
  this.timeout(30_000)
  let dir: string
  before(async () => {
    dir = await tempDir()
  })
  after(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  // A certificate file that cannot load: a node that reads it prints a warning at start, so a
  // silent stderr proves the variable never reached node (it costs ~0.1 s when it does).
  const env = {...process.env, NODE_EXTRA_CA_CERTS: '/nonexistent/vdrep-test-ca.pem'}

  it('runs directly, and through a symlink, with NODE_EXTRA_CA_CERTS dropped', async () => {
    const pkg = JSON.parse(await fs.readFile(path.join(path.dirname(VDREP_BIN), '..', 'package.json'), 'utf8')) as {version: string}
    const link = path.join(dir, 'vdrep')
    await fs.symlink(VDREP_BIN, link)
    for (const bin of [VDREP_BIN, link]) {
      const r = spawnSync(bin, ['--version'], {encoding: 'utf8', env})
      assert.equal(r.status, 0, r.stderr)
      assert.match(r.stdout, new RegExp(`^vdrep/${pkg.version.replace(/\./g, '\\.')} `))
      assert.equal(r.stderr, '', `${bin}: node saw NODE_EXTRA_CA_CERTS`)
    }
  })

  it('passes arguments through unchanged (spaces, an unknown flag gets exit 2)', () => {
    const r = spawnSync(VDREP_BIN, ['status', '--no-such-flag', 'a b'], {encoding: 'utf8', env})
    assert.equal(r.status, 2, r.stderr)
    assert.match(r.stderr, /no-such-flag/)
  })

  it('VDREP_OPTIMIZE_AFTER_MS: empty, junk or too large for a timer is no error and no warning', () => {
    for (const value of ['', 'soon', '99999999999', '0']) {
      const r = spawnSync(VDREP_BIN, ['--version'], {encoding: 'utf8', env: {...env, VDREP_OPTIMIZE_AFTER_MS: value}})
      assert.equal(r.status, 0, r.stderr)
      assert.equal(r.stderr, '', `VDREP_OPTIMIZE_AFTER_MS=${value}`)
    }
  })

  it('optimize-delay: the default, the variable, --no-opt already given, and the daemons exempt', async () => {
    type Fn = (args: string[], env: Record<string, string | undefined>, execArgv: string[]) => number
    const {optimizeDelay, DEFAULT_OPTIMIZE_AFTER_MS: d} = (await import(pathToFileURL(path.join(path.dirname(VDREP_BIN), 'optimize-delay.js')).href)) as {
      optimizeDelay: Fn
      DEFAULT_OPTIMIZE_AFTER_MS: number
    }
    assert.equal(d, 1500)
    assert.equal(optimizeDelay(['fullsync', 'x.img'], {}, []), d)
    assert.equal(optimizeDelay(['push', 'x.img'], {VDREP_OPTIMIZE_AFTER_MS: '250'}, []), 250)
    assert.equal(optimizeDelay(['push'], {VDREP_OPTIMIZE_AFTER_MS: '0'}, []), 0)
    assert.equal(optimizeDelay(['push'], {VDREP_OPTIMIZE_AFTER_MS: ' '}, []), d)
    assert.equal(optimizeDelay(['push'], {VDREP_OPTIMIZE_AFTER_MS: '-5'}, []), d)
    assert.equal(optimizeDelay(['push'], {VDREP_OPTIMIZE_AFTER_MS: '1e12'}, []), 2 ** 31 - 1)
    assert.equal(optimizeDelay(['push'], {NODE_OPTIONS: '--max-old-space-size=512 --no-opt'}, []), 0)
    assert.equal(optimizeDelay(['push'], {}, ['--no-opt']), 0)
    assert.equal(optimizeDelay(['serve', '--root', '/r'], {}, []), 0)
    assert.equal(optimizeDelay(['track', 'x.img', '--nbd', 'unix:/s'], {}, []), 0)
    assert.equal(optimizeDelay(['track', 'x.img', '--scan'], {}, []), d, 'a scan is a short run')
  })
})
