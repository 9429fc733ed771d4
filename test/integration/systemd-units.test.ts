// The shipped systemd units (systemd/): each one, installed as an admin would (ExecStart naming
// the installed vdrep, templates instantiated for a disk), passes `systemd-analyze verify` with
// nothing to say; the receiver's is hardened; the instance name `init` prints is the one
// `systemd-escape --path` gives, and the lines are quoted for the shell.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {PROJECT_ROOT, VDREP_BIN, json, vdrep} from '../helpers/cli.js'
import {makeMixedDisk, tempDir} from '../helpers/disks.js'
import {systemdEscapePath} from '../../src/core/util/systemd-escape.js'

const UNITS = path.join(PROJECT_ROOT, 'systemd')
const SHIPPED_BIN = '/usr/local/bin/vdrep'
const have = (cmd: string) => spawnSync(cmd, ['--version']).status === 0

/** `systemd-analyze verify` of unit files: its exit code and everything it printed. */
function verify(files: string[]): {code: number | null; out: string} {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...files], {encoding: 'utf8'})
  return {code: r.status, out: `${r.stdout}${r.stderr}`.trim()}
}

describe('systemd units', function () {
  this.timeout(60_000)
  let dir: string
  before(function () {
    if (!have('systemd-analyze')) this.skip() // Debian: the systemd package
  })
  beforeEach(async () => {
    dir = await tempDir('vdrep-units-')
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  /** Copies a unit into `dir` under `name`, its ExecStart naming this clone's (existing, absolute) vdrep. */
  async function install(unit: string, name = unit): Promise<string> {
    const text = await fs.readFile(path.join(UNITS, unit), 'utf8')
    if (unit.endsWith('.service')) assert.ok(text.includes(SHIPPED_BIN), `${unit} names ${SHIPPED_BIN}`)
    const file = path.join(dir, name)
    await fs.writeFile(file, text.replaceAll(SHIPPED_BIN, VDREP_BIN))
    return file
  }

  it('every shipped unit passes systemd-analyze verify, templates instantiated for a disk', async () => {
    const names = (await fs.readdir(UNITS)).sort()
    assert.deepEqual(names, [
      'vdrep-push.service',
      'vdrep-push.timer',
      'vdrep-push@.service',
      'vdrep-push@.timer',
      'vdrep-serve.service',
      'vdrep-track@.service',
    ])
    const instance = systemdEscapePath('/vm/web 1.img')
    for (const unit of names) {
      const file = await install(unit, unit.replace('@.', `@${instance}.`))
      // A timer needs its service beside it.
      const service = unit.includes('@') ? ['vdrep-push@.service', `vdrep-push@${instance}.service`] : ['vdrep-push.service', 'vdrep-push.service']
      const extra = unit.endsWith('.timer') ? [await install(service[0], service[1])] : []
      const r = verify([file, ...extra])
      assert.equal(r.code, 0, `${unit}: ${r.out}`)
      assert.equal(r.out, '', `${unit}: no warning either (an unknown key is only a warning): ${r.out}`)
    }
  })

  it('the check bites: a typo, or an ExecStart that does not exist, is reported', async () => {
    const typo = await install('vdrep-serve.service', 'typo.service')
    await fs.writeFile(typo, (await fs.readFile(typo, 'utf8')).replace(/^ProtectSystem=strict$/m, 'ProtectSytem=strict'))
    assert.match(verify([typo]).out, /Unknown key 'ProtectSytem'/)
    const shipped = path.join(dir, 'vdrep-serve.service')
    await fs.copyFile(path.join(UNITS, 'vdrep-serve.service'), shipped)
    if (!(await fs.stat(SHIPPED_BIN).catch(() => null))) assert.notEqual(verify([shipped]).code, 0, 'a missing binary fails')
  })

  it('vdrep-serve.service is hardened, and writes only its root', async () => {
    const text = await fs.readFile(path.join(UNITS, 'vdrep-serve.service'), 'utf8')
    for (const line of ['Type=notify', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'ReadWritePaths=/srv/vdrep'])
      assert.match(text, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), line)
    assert.match(text, /^ExecStart=\S+ serve --root \$\{VDREP_ROOT\}$/m)
    assert.match(text, /^Environment=VDREP_ROOT=\/srv\/vdrep$/m)
    const track = await fs.readFile(path.join(UNITS, 'vdrep-track@.service'), 'utf8')
    assert.match(track, /^Type=notify$/m)
    const timer = await fs.readFile(path.join(UNITS, 'vdrep-push@.timer'), 'utf8')
    for (const line of [/^Persistent=true$/m, /^RandomizedDelaySec=\S+$/m, /^OnCalendar=minutely$/m]) assert.match(timer, line)
    const push = await fs.readFile(path.join(UNITS, 'vdrep-push@.service'), 'utf8')
    assert.match(push, /^ExecStart=\S+ push --if-due %I /m)
    // One unit for every disk of the config file: push --all, when due, run by its timer.
    const all = await fs.readFile(path.join(UNITS, 'vdrep-push.service'), 'utf8')
    assert.match(all, /^ExecStart=\S+ push --all --if-due /m)
    const allTimer = await fs.readFile(path.join(UNITS, 'vdrep-push.timer'), 'utf8')
    for (const line of [/^Persistent=true$/m, /^RandomizedDelaySec=\S+$/m, /^OnCalendar=minutely$/m]) assert.match(allTimer, line)
    const pkg = JSON.parse(await fs.readFile(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as {files: string[]}
    assert.ok(pkg.files.includes('systemd'), 'the units are in the package')
  })

  it('instance names match systemd-escape --path, for hostile names too', function () {
    if (!have('systemd-escape')) this.skip()
    for (const p of [
      '/vm/web.img',
      '/vm/my disk.img',
      '/vm/a-b/.hidden',
      "/vm/q$(touch x)'\\.img",
      '/dev/disk/by-id/wwn-0x5000',
      '/vm/ünï.img',
      '//vm//x/',
      '/',
    ]) {
      const r = spawnSync('systemd-escape', ['--path', p], {encoding: 'utf8'})
      assert.equal(systemdEscapePath(p), r.stdout.trim(), p)
    }
  })

  it('init prints the systemctl lines; run by sh, they name the unit of this disk', async () => {
    const disk = path.join(dir, "my vm's disk.img")
    await makeMixedDisk(disk, 1 << 20)
    const r = await vdrep(['init', disk, '--to', path.join(dir, 'replica.img'), '--json'])
    assert.equal(r.code, 0, r.stderr)
    const lines = json<{systemd: string[]}>(r).systemd
    assert.equal(lines.length, 1)
    // What the shell hands systemctl: echo stands in for it.
    const words = spawnSync('sh', ['-c', lines[0].replace(/^systemctl /, 'printf "%s\\n" ')], {encoding: 'utf8'})
      .stdout.trim()
      .split('\n')
    assert.deepEqual(words, ['enable', '--now', `vdrep-push@${systemdEscapePath(disk)}.timer`])
    const text = await vdrep(['init', disk, '--to', path.join(dir, 'replica.img'), '--force'])
    assert.match(text.stdout, /or a systemd timer .*systemd\/, installed in \/etc\/systemd\/system\):\nsystemctl enable --now 'vdrep-push@/)
    // With a state folder, the push unit gets it through its environment file.
    const state = path.join(dir, 'state dir')
    const withState = await vdrep(['init', disk, '--to', path.join(dir, 'replica.img'), '--state-dir', state, '--json'])
    assert.equal(withState.code, 0, withState.stderr)
    const [envLine] = json<{systemd: string[]}>(withState).systemd
    const etc = path.join(dir, 'etc')
    const ran = spawnSync('sh', ['-c', envLine.replaceAll('/etc/vdrep', etc)], {encoding: 'utf8'})
    assert.equal(ran.status, 0, ran.stderr)
    const env = await fs.readFile(path.join(etc, `push-${systemdEscapePath(disk)}.env`), 'utf8')
    assert.equal(env, `VDREP_STATE_DIR='${state}'\n`)
  })
})
