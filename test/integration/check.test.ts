// `vdrep check` against a real sshd and a real `vdrep serve` (issue 20, "a first-run check"):
// all ok; a host key not in known_hosts (its fingerprint and the line to add are printed, the
// file is left alone, and the printed line fixes it); a wrong identity; nothing listening and
// no serve command that starts one; a replica path outside the receiver's root; a replica host
// with no room (a 4 MiB tmpfs under the root); another source's replica; a local target.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {json, vdrep, type CliResult} from '../helpers/cli.js'
import {MiB, SshCycle} from '../helpers/cycle.js'
import {makeMixedDisk, tempDir} from '../helpers/disks.js'
import {freePort, makeKeyPair} from '../helpers/sshd.js'
import type {CheckReport, CheckStatus} from '../../src/core/check/check.js'

const execFileP = promisify(execFile)

describe('vdrep check: a first-run check of an SSH target and a local one (real sshd, vdrep serve)', function () {
  this.timeout(120_000)
  let c: SshCycle

  before(async () => {
    c = await SshCycle.start()
  })
  after(async () => {
    await c?.stop()
  })

  async function disk(name: string, size = 8 * MiB): Promise<string> {
    const d = path.join(c.dir, `${name}.img`)
    await makeMixedDisk(d, size, name)
    return d
  }

  /** init with the cycle's settings, some replaced by `over`, without init's own check. */
  async function init(d: string, target: string, over: Record<string, string> = {}): Promise<void> {
    const flags: Record<string, string> = {
      '--known-hosts': c.sshd.knownHostsFile,
      '--identity': c.sshd.clientKey.path,
      '--fullsync-port': String(c.serve.ports[0]),
      '--delta-port': String(c.serve.ports[1]),
      '--serve-command': 'false',
      ...over,
    }
    const r = await c.vdrep(['init', d, '--to', target, ...Object.entries(flags).flat(), '--no-check'])
    assert.equal(r.code, 0, r.stderr)
  }

  async function check(d: string): Promise<{r: CliResult; report: CheckReport; status: Record<string, CheckStatus>}> {
    const r = await c.vdrep(['check', d, '--json', '--timeout', '15s'])
    const report = json<CheckReport>(r)
    return {r, report, status: Object.fromEntries(report.checks.map((x) => [x.name, x.status]))}
  }

  const item = (report: CheckReport, name: string) => report.checks.find((x) => x.name === name)!

  it('all ok for a new replica, then for the synced one; plain lines without a TTY', async () => {
    const d = await disk('allok')
    await init(d, c.target(path.join(c.root, 'allok.img')))
    const {r, status} = await check(d)
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.deepEqual(status, {
      disk: 'ok',
      psf: 'ok',
      host: 'ok',
      'ssh-port': 'ok',
      'host-key': 'ok',
      login: 'ok',
      'receiver-delta': 'ok',
      'receiver-fullsync': 'ok',
      'replica-path': 'ok',
      room: 'ok',
    })
    const plain = await c.vdrep(['check', d])
    assert.equal(plain.code, 0, plain.stderr)
    assert.match(plain.stdout, /^ok {3}host-key: ED25519 SHA256:\S+ is in /m)
    assert.ok(!plain.stdout.includes('✓') && !plain.stdout.includes(String.fromCharCode(27)), 'no marks or colour without a TTY')
    const f = await c.vdrep(['fullsync', d])
    assert.equal(f.code, 0, f.stderr)
    const after = await check(d)
    assert.equal(after.r.code, 0)
    assert.match(item(after.report, 'replica-path').detail, /this disk's replica/)
  })

  it("a host key not in known_hosts: fails with the key's fingerprint and the line to add, adds nothing; the printed line fixes it", async () => {
    const d = await disk('newkey')
    const empty = path.join(c.dir, 'empty_known_hosts')
    await fs.writeFile(empty, '')
    await init(d, c.target(path.join(c.root, 'newkey.img')), {'--known-hosts': empty})
    const {r, report, status} = await check(d)
    assert.equal(r.code, 1, r.stdout + r.stderr)
    assert.equal(status['host-key'], 'fail')
    assert.equal(status.login, 'skip')
    const hk = item(report, 'host-key')
    assert.ok(hk.detail.includes(c.sshd.fingerprint('ed25519')), hk.detail)
    assert.equal(await fs.readFile(empty, 'utf8'), '', 'known_hosts is never written by check')
    const line = /echo '([^']+)' >> (\S+)/.exec(hk.fix ?? '')
    assert.ok(line, hk.fix)
    assert.equal(line[2], empty)
    await fs.appendFile(empty, `${line[1]}\n`)
    const again = await check(d)
    assert.equal(again.r.code, 0, again.r.stdout)
    assert.equal(again.status['host-key'], 'ok')
  })

  it('a wrong identity: the host key is fine, the login fails and says what to do', async () => {
    const d = await disk('wrongid')
    const other = await makeKeyPair(await tempDir('vdrep-key-'), 'other', 'ed25519')
    await init(d, c.target(path.join(c.root, 'wrongid.img')), {'--identity': other.path})
    const {r, report, status} = await check(d)
    assert.equal(r.code, 1)
    assert.equal(status['host-key'], 'ok')
    assert.equal(status.login, 'fail')
    assert.match(item(report, 'login').fix ?? '', /authorized_keys/)
    assert.equal(status['receiver-delta'], 'skip')
  })

  it('nothing listens on the ports and the serve command cannot start a receiver: both ports fail, path and room skipped', async () => {
    const d = await disk('noserve')
    await init(d, c.target(path.join(c.root, 'noserve.img')), {'--fullsync-port': String(await freePort()), '--delta-port': String(await freePort())})
    const {r, report, status} = await check(d)
    assert.equal(r.code, 1)
    assert.equal(status.login, 'ok')
    assert.equal(status['receiver-delta'], 'fail')
    assert.equal(status['receiver-fullsync'], 'fail')
    assert.match(item(report, 'receiver-delta').detail, /nothing listens .*'false'/)
    assert.equal(status['replica-path'], 'skip')
  })

  it("a replica path outside the receiver's root: refused by the receiver, said with its reason", async () => {
    const d = await disk('outside')
    await init(d, c.target(path.join(c.dir, 'elsewhere.img')))
    const {r, report, status} = await check(d)
    assert.equal(r.code, 1)
    assert.equal(status['receiver-delta'], 'ok')
    assert.equal(status['replica-path'], 'fail')
    assert.match(item(report, 'replica-path').detail, /PATH_OUTSIDE_ROOT: .*not under the root/)
    assert.equal(status.room, 'skip')
  })

  it('a replica host with no room: a 4 MiB tmpfs under the root for a 16 MiB disk', async () => {
    const small = path.join(c.root, 'small')
    await fs.mkdir(small)
    try {
      await execFileP('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0755', 'tmpfs', small])
    } catch (err) {
      console.log(`      (skipped: cannot mount a tmpfs: ${(err as Error).message.split('\n')[0]})`)
      return
    }
    try {
      const d = await disk('full', 16 * MiB)
      await init(d, c.target(path.join(small, 'full.img')))
      const {r, report, status} = await check(d)
      assert.equal(r.code, 1)
      assert.equal(status['replica-path'], 'ok')
      assert.equal(status.room, 'fail')
      assert.match(item(report, 'room').detail, /4 MiB free of 4 MiB.*16 MiB/)
    } finally {
      await execFileP('umount', [small])
    }
  })

  it("another source's replica at the path: fails (a sync would be refused with exit 10)", async () => {
    const a = await disk('owner')
    await init(a, c.target(path.join(c.root, 'shared.img')))
    assert.equal((await c.vdrep(['fullsync', a])).code, 0)
    const b = await disk('intruder')
    await init(b, c.target(path.join(c.root, 'shared.img')))
    const {r, status} = await check(b)
    assert.equal(r.code, 1)
    assert.equal(status['replica-path'], 'fail')
    assert.equal(status.room, 'skip')
  })

  it('init over SSH runs the check: warnings by default (exit 0), --check makes a failure fail init, and init starts no receiver', async () => {
    const d = await disk('initcheck')
    const empty = path.join(c.dir, 'initcheck_known_hosts')
    await fs.writeFile(empty, '')
    const marker = path.join(c.dir, 'started-by-init')
    const base = ['init', d, '--to', c.target(path.join(c.root, 'initcheck.img')), '--identity', c.sshd.clientKey.path, '--timeout', '15s']
    const warned = await c.vdrep([...base, '--known-hosts', empty])
    assert.equal(warned.code, 0, warned.stderr)
    assert.match(warned.stderr, /check: FAIL host-key: .*SHA256:/)
    assert.equal(await fs.readFile(empty, 'utf8'), '')
    const strict = await c.vdrep([...base, '--known-hosts', empty, '--force', '--check'])
    assert.equal(strict.code, 1, strict.stderr)
    // Nothing listens on these ports: init says the first sync will start the receiver, and starts nothing.
    const idle = await c.vdrep([
      ...base,
      '--force',
      '--known-hosts',
      c.sshd.knownHostsFile,
      '--fullsync-port',
      String(await freePort()),
      '--delta-port',
      String(await freePort()),
      '--serve-command',
      `touch ${marker}`,
      '--json',
    ])
    assert.equal(idle.code, 0, idle.stdout + idle.stderr)
    const report = json<{check: CheckReport}>(idle).check
    assert.equal(item(report, 'receiver-delta').status, 'warn', JSON.stringify(item(report, 'receiver-delta')))
    assert.match(item(report, 'receiver-delta').detail, /first sync starts the receiver/)
    assert.equal(await fs.stat(marker).catch(() => undefined), undefined, 'init ran the serve command')
    const ok = await c.vdrep([
      ...base,
      '--force',
      '--known-hosts',
      c.sshd.knownHostsFile,
      '--fullsync-port',
      String(c.serve.ports[0]),
      '--delta-port',
      String(c.serve.ports[1]),
    ])
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, /check: all 10 checks passed/)
  })

  it('a local target: the directory and room; a missing directory says how to fix it', async () => {
    const dir = await tempDir('vdrep-check-local-')
    const d = path.join(dir, 'l.img')
    await makeMixedDisk(d, 4 * MiB, 'l')
    await fs.mkdir(path.join(dir, 'replica'))
    const i = await vdrep(['init', d, '--to', path.join(dir, 'replica', 'l.img')])
    assert.equal(i.code, 0, i.stderr)
    await fs.rmdir(path.join(dir, 'replica'))
    const missing = await vdrep(['check', d, '--json'])
    if (missing.code === 0) assert.fail('a missing target directory must fail the check')
    const rep = json<CheckReport>(missing)
    assert.equal(rep.checks.find((x) => x.name === 'replica-path')?.status, 'fail')
    assert.match(rep.checks.find((x) => x.name === 'replica-path')?.fix ?? '', /mkdir -p/)
    await fs.mkdir(path.join(dir, 'replica'))
    const ok = await vdrep(['check', d, '--json'])
    assert.equal(ok.code, 0, ok.stdout)
  })
})
