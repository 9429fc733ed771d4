// The conventions an administrator expects of a CLI (issue 20): `vdrep help <command>` and
// `-h`, a suggestion-bearing error for a typo (exit 127), shell completion scripts, and man
// pages that `man` finds after installing the packed tarball (not a link into the clone).
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {pathToFileURL} from 'node:url'
import {PROJECT_ROOT, VDREP_BIN, vdrep} from '../helpers/cli.js'
import {tempDir} from '../helpers/disks.js'

type NeedsPlugins = (args: string[], ids: Set<string>) => boolean

describe('CLI conventions: help, -h, typos, completion, man pages', function () {
  this.timeout(240_000)

  it('vdrep help push, vdrep push -h and vdrep push --help print the same help; vdrep help lists every command', async () => {
    const viaHelp = await vdrep(['help', 'push'])
    const viaH = await vdrep(['push', '-h'])
    const viaLong = await vdrep(['push', '--help'])
    for (const r of [viaHelp, viaH, viaLong]) assert.equal(r.code, 0, r.stderr)
    // push --group takes its members as further arguments: DISK... in the usage.
    assert.match(viaHelp.stdout, /USAGE\s+\$ vdrep push \[DISK(\.\.\.)?\]/)
    assert.equal(viaH.stdout, viaLong.stdout)
    assert.equal(viaHelp.stdout, viaLong.stdout)
    const all = await vdrep(['help'])
    assert.equal(all.code, 0, all.stderr)
    const ids = (await fs.readdir(path.join(PROJECT_ROOT, 'dist', 'bundle', 'commands'))).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3))
    for (const id of ids) assert.match(all.stdout, new RegExp(`^\\s+${id}\\s`, 'm'), `vdrep help lists ${id}`)
    assert.deepEqual((await vdrep([])).stdout, all.stdout, 'vdrep alone prints the same')
  })

  it('a typo is refused with exit 127 and a pointer to the help, nothing run', async () => {
    const r = await vdrep(['pussh', 'x.img'])
    assert.equal(r.code, 127, r.stdout + r.stderr)
    assert.match(r.stderr, /pussh.* is not a vdrep command/)
    assert.match(r.stderr, /vdrep help/)
  })

  it('completion: vdrep autocomplete script bash and zsh print scripts that name the commands', async () => {
    const home = await tempDir('vdrep-ac-')
    for (const shell of ['bash', 'zsh']) {
      const r = await vdrep(['autocomplete', 'script', shell], {env: {HOME: home, XDG_CACHE_HOME: path.join(home, '.cache')}})
      assert.equal(r.code, 0, `${shell}: ${r.stderr}`)
      assert.match(r.stdout, /vdrep/)
    }
    const setup = await vdrep(['autocomplete', 'bash', '--refresh-cache'], {env: {HOME: home, XDG_CACHE_HOME: path.join(home, '.cache')}})
    assert.equal(setup.code, 0, setup.stderr)
    const found = execFileSync('grep', ['-rl', 'fullsync', path.join(home, '.cache')], {encoding: 'utf8'})
    assert.ok(found.length > 0, 'the completion cache names the commands')
  })

  it('the plugins load only when needed: a command run never loads them', async () => {
    const {needsPlugins} = (await import(pathToFileURL(path.join(path.dirname(VDREP_BIN), 'cli-plugins.js')).href)) as {needsPlugins: NeedsPlugins}
    const ids = new Set(['push', 'status'])
    assert.equal(needsPlugins(['push', 'x.img'], ids), false)
    assert.equal(needsPlugins(['push', '-h'], ids), false, "a command's own help is @oclif/core's")
    assert.equal(needsPlugins(['--version'], ids), false)
    assert.equal(needsPlugins([], ids), true)
    assert.equal(needsPlugins(['help', 'push'], ids), true)
    assert.equal(needsPlugins(['autocomplete'], ids), true)
    assert.equal(needsPlugins(['pussh'], ids), true)
  })

  it('every man page is in package.json "man"; after npm pack and a global install into a prefix, man finds vdrep and vdrep-push', async () => {
    const pkg = JSON.parse(await fs.readFile(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as {man: string[]}
    const pages = (await fs.readdir(path.join(PROJECT_ROOT, 'man'))).filter((f) => f.endsWith('.1')).sort()
    assert.deepEqual(pkg.man.map((m) => path.basename(m)).sort(), pages, 'package.json "man" lists every page in man/')
    const dir = await tempDir('vdrep-pack-')
    // The build is done (pretest): pack without running prepare again.
    execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], {cwd: PROJECT_ROOT, stdio: 'ignore'})
    const tarball = (await fs.readdir(dir)).find((f) => f.endsWith('.tgz'))
    assert.ok(tarball)
    const prefix = path.join(dir, 'prefix')
    execFileSync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', path.join(dir, tarball)], {
      stdio: 'ignore',
    })
    const installed = await fs.realpath(path.join(prefix, 'bin', 'vdrep'))
    assert.ok(installed.startsWith(prefix), `the installed vdrep is a copy in the prefix, not a link into the clone (${installed})`)
    const env = {...process.env, MANPATH: path.join(prefix, 'share', 'man')}
    for (const page of ['vdrep', 'vdrep-push']) {
      const where = execFileSync('man', ['-w', page], {env, encoding: 'utf8'}).trim()
      assert.ok(where.startsWith(prefix), `man -w ${page}: ${where}`)
    }
    const help = execFileSync(path.join(prefix, 'bin', 'vdrep'), ['help', 'push'], {encoding: 'utf8'})
    assert.match(help, /USAGE\s+\$ vdrep push \[DISK(\.\.\.)?\]/)
  })
})
