// The SSH integration cases that matter to a carrier, run over both (`--ssh ssh2` and
// `--ssh openssh`, the system's ssh): full sync and push to equal, an unknown host key and a
// wrong key refused with the same exit codes and nothing written, the receiver auto-started
// over SSH exec, a cut connection (sshd's sessions killed mid-sync) that fails with exit 7
// and resumes. OpenSSH only: ProxyJump through a second sshd named in an ssh_config file
// (-F, never the user's ~/.ssh), and a clear error when `ssh` is not installed.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {promisify} from 'node:util'
import fs from 'node:fs/promises'
import path from 'node:path'
import {readReplicaState} from '../../src/core/receiver/replica-state.js'
import {collect, vdrep, VDREP_BIN} from '../helpers/cli.js'
import {cmpEqual, exists, MiB, SshCycle, waitFor} from '../helpers/cycle.js'
import {makeMixedDisk, scribbleBlocks, seededBytes} from '../helpers/disks.js'
import {freePort, makeKeyPair, startSshd, type Sshd} from '../helpers/sshd.js'

const BS = 64 * 1024
const run = promisify(execFile)

for (const carrier of ['ssh2', 'openssh'] as const) {
  describe(`SSH carrier: ${carrier}`, function () {
    this.timeout(120_000)
    let c: SshCycle
    let config: string

    before(async () => {
      c = await SshCycle.start()
      // Both carriers read this file instead of ~/.ssh/config (VDREP_SSH_CONFIG; ssh -F).
      config = path.join(c.dir, 'ssh_config')
      await fs.writeFile(config, '# test ssh_config\n')
      c.env = {...c.env, VDREP_SSH_CONFIG: config}
    })
    after(async () => c.stop())

    /** `vdrep init` for this carrier; `over` replaces the cycle's settings flag by flag. */
    async function newDisk(name: string, size: number, over: Record<string, string> = {}): Promise<{disk: string; replica: string}> {
      const disk = path.join(c.dir, `${carrier}-${name}.img`)
      const replica = path.join(c.root, `${carrier}-${name}.img`)
      await makeMixedDisk(disk, size, name)
      const flags: Record<string, string> = {
        '--to': c.target(replica),
        '--known-hosts': c.sshd.knownHostsFile,
        '--identity': c.sshd.clientKey.path,
        '--fullsync-port': String(c.serve.ports[0]),
        '--delta-port': String(c.serve.ports[1]),
        '--serve-command': 'false',
        '--ssh': carrier,
        ...over,
      }
      const r = await c.vdrep(['init', disk, ...Object.entries(flags).flat()])
      assert.equal(r.code, 0, r.stderr)
      return {disk, replica}
    }

    it('full sync, then pushes of one block and of many, each leaving the replica equal', async () => {
      const {disk, replica} = await newDisk('sync', 8 * MiB)
      const f = await c.vdrep(['fullsync', disk, '-v'])
      assert.equal(f.code, 0, f.stderr)
      assert.ok(await cmpEqual(disk, replica))
      if (carrier === 'openssh') assert.match(f.stderr, /running ssh .*-W 127\.0\.0\.1:\d+/)
      else {
        assert.doesNotMatch(f.stderr, /running ssh /)
        // The source is described over a second channel of the same login, not a second login.
        assert.equal(f.stderr.match(/logged in to /g)?.length, 1, f.stderr)
        assert.match(f.stderr, new RegExp(`opened tunnel to 127\\.0\\.0\\.1:${c.serve.ports[1]}`))
      }
      const listed = await c.vdrep(['replicas', '--root', c.root, '--json'])
      assert.equal(listed.code, 0, listed.stderr)
      const mine = (JSON.parse(listed.stdout) as {replicas: Array<{path: string; source?: {disk: string}}>}).replicas.find((r) => r.source?.disk === disk)
      assert.ok(mine, `the replica host was told where the replica comes from: ${listed.stdout}`)
      for (const count of [1, 17]) {
        await scribbleBlocks(disk, BS, count, `push-${count}`)
        const p = await c.vdrep(['push', disk, '--json'])
        assert.equal(p.code, 0, p.stderr)
        assert.equal(JSON.parse(p.stdout).mode, 'delta', p.stdout)
        assert.ok(await cmpEqual(disk, replica), `push of ${count} block(s): the replica differs`)
      }
    })

    it('refuses an unknown host key (exit 8): nothing written, known_hosts left alone', async () => {
      const kh = path.join(c.dir, `${carrier}-empty_known_hosts`)
      await fs.writeFile(kh, '')
      const {disk, replica} = await newDisk('unknown', MiB, {'--known-hosts': kh})
      const r = await c.vdrep(['fullsync', disk])
      assert.equal(r.code, 8, r.stderr)
      assert.match(r.stderr, /authenticity of host .* can't be established/)
      assert.ok(!(await exists(replica)))
      assert.equal(await fs.readFile(kh, 'utf8'), '', 'known_hosts is left alone')
    })

    it('refuses a changed host key (exit 8) even with --accept-new-host-key', async () => {
      const other = await makeKeyPair(c.dir, `${carrier}-other-host`, 'ed25519')
      const kh = path.join(c.dir, `${carrier}-changed_known_hosts`)
      await fs.writeFile(kh, `[127.0.0.1]:${c.sshd.port} ${other.type} ${other.blob.toString('base64')}\n`)
      const {disk, replica} = await newDisk('changed', MiB, {'--known-hosts': kh})
      const r = await c.vdrep(['fullsync', disk, '--accept-new-host-key'])
      assert.equal(r.code, 8, r.stderr)
      assert.ok(!(await exists(replica)))
    })

    it('refuses a key the server does not know (exit 7): nothing written', async () => {
      const wrong = await makeKeyPair(c.dir, `${carrier}-wrong`, 'ed25519')
      const {disk, replica} = await newDisk('wrongkey', MiB, {'--identity': wrong.path})
      const r = await c.vdrep(['fullsync', disk])
      assert.equal(r.code, 7, r.stderr)
      assert.match(r.stderr, /ssh login to .* failed/)
      assert.ok(!(await exists(replica)))
    })

    it('auto-starts the receiver over SSH exec when none listens', async () => {
      const ports: [number, number] = [await freePort(), await freePort()]
      const cfg = path.join(c.dir, `${carrier}-auto-serve.json`)
      await fs.writeFile(cfg, JSON.stringify({root: c.root, fullsyncPort: ports[0], deltaPort: ports[1], logFile: path.join(c.dir, `${carrier}-auto.log`)}), {
        mode: 0o600,
      })
      const {disk, replica} = await newDisk('auto', 2 * MiB, {
        '--fullsync-port': String(ports[0]),
        '--delta-port': String(ports[1]),
        '--serve-command': `${process.execPath} ${VDREP_BIN} serve --daemon --config ${cfg}`,
      })
      const r = await c.vdrep(['fullsync', disk, '-v'])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stderr, /nothing listens on 127\.0\.0\.1:\d+ .*starting the receiver with: .*serve --daemon/)
      assert.ok(await cmpEqual(disk, replica))
      const pid = Number(/started in the background: .*pid (\d+)/.exec(r.stderr)?.[1])
      assert.ok(pid > 0, r.stderr)
      process.kill(pid, 'SIGTERM')
    })

    it('a cut connection (sshd sessions killed) fails with exit 7, the replica stays incomplete, and the rerun resumes to equal', async () => {
      const {disk, replica} = await newDisk('cut', 24 * MiB)
      const fh = await fs.open(disk, 'r+')
      await fh.write(seededBytes(`${carrier}-cut-all`, 24 * MiB), 0, 24 * MiB, 0)
      await fh.close()
      const client = c.startVdrep(['fullsync', disk, '--bwlimit', '6M', '--compress', 'none', '--checkpoint-bytes', '1M'])
      const result = collect(client)
      await waitFor(
        'a checkpoint past 6 MiB',
        async () => ((await readReplicaState(replica).catch(() => ({state: undefined}))).state?.resumeBlock ?? 0) * BS >= 6 * MiB,
      )
      // Mid-sync, neither the client nor an ssh it started listens on any port: the carrier
      // gives another local user nothing to connect to (ssh -W is stdio, not -L).
      const kids = await run('pgrep', ['-P', String(client.pid)]).then(
        (r) => r.stdout.split('\n').filter(Boolean).map(Number),
        () => [] as number[],
      )
      if (carrier === 'openssh') assert.ok(kids.length > 0, 'the client runs ssh')
      const listening = (await run('ss', ['-Hltnp'])).stdout
      for (const pid of [client.pid!, ...kids]) assert.doesNotMatch(listening, new RegExp(`pid=${pid},`), `pid ${pid} listens:\n${listening}`)
      assert.ok((await c.sshd.killSessions()) > 0)
      const r = await result
      assert.equal(r.code, 7, r.stderr)
      assert.match(r.stderr, /ssh connection to .* was cut|closed the connection/, r.stderr)
      assert.equal((await readReplicaState(replica)).state?.complete, false, 'the replica stays marked incomplete')
      const again = await c.vdrep(['fullsync', disk])
      assert.equal(again.code, 0, again.stderr)
      assert.match(again.stdout, /resumed at [1-9]\d*%/)
      assert.ok(await cmpEqual(disk, replica))
    })

    it('kill -9 of the client mid-sync leaves no ssh behind, and the rerun resumes to equal', async () => {
      const {disk, replica} = await newDisk('kill9', 16 * MiB)
      const fh = await fs.open(disk, 'r+')
      await fh.write(seededBytes(`${carrier}-kill9`, 16 * MiB), 0, 16 * MiB, 0)
      await fh.close()
      const client = c.startVdrep(['fullsync', disk, '--bwlimit', '4M', '--compress', 'none', '--checkpoint-bytes', '1M'])
      const result = collect(client)
      await waitFor('a checkpoint', async () => ((await readReplicaState(replica).catch(() => ({state: undefined}))).state?.resumeBlock ?? 0) > 0)
      const kids = await run('pgrep', ['-P', String(client.pid)]).then(
        (r) => r.stdout.split('\n').filter(Boolean).map(Number),
        () => [] as number[],
      )
      if (carrier === 'openssh') assert.ok(kids.length > 0, 'the client runs ssh')
      client.kill('SIGKILL')
      await result
      // ssh -W sees EOF on stdin when its parent dies, ends the channel and exits.
      const alive = (pid: number) => {
        try {
          process.kill(pid, 0)
          return true
        } catch {
          return false
        }
      }
      await waitFor('the ssh children to exit', () => kids.every((k) => !alive(k)), 10_000)
      const again = await c.vdrep(['fullsync', disk])
      assert.equal(again.code, 0, again.stderr)
      assert.ok(await cmpEqual(disk, replica))
    })

    if (carrier !== 'openssh') return

    describe('OpenSSH only', () => {
      let jump: Sshd
      before(async () => {
        jump = await startSshd()
      })
      after(async () => jump.stop())

      it('goes through a ProxyJump host named in the ssh_config file, with its own host key checked', async () => {
        await fs.writeFile(
          config,
          [
            'Host replica-via-jump',
            '  HostName 127.0.0.1',
            `  Port ${c.sshd.port}`,
            '  ProxyJump jumphost',
            'Host jumphost',
            '  HostName 127.0.0.1',
            `  Port ${jump.port}`,
            `  User ${jump.user}`,
            `  IdentityFile ${jump.clientKey.path}`,
            `  UserKnownHostsFile ${jump.knownHostsFile}`,
            '  StrictHostKeyChecking yes',
            '  BatchMode yes',
            '',
          ].join('\n'),
        )
        const disk = path.join(c.dir, 'jump.img')
        const replica = path.join(c.root, 'jump.img')
        await makeMixedDisk(disk, 2 * MiB, 'jump')
        const args = [
          '--known-hosts',
          c.sshd.knownHostsFile,
          '--identity',
          c.sshd.clientKey.path,
          '--fullsync-port',
          String(c.serve.ports[0]),
          '--delta-port',
          String(c.serve.ports[1]),
        ]
        const i = await c.vdrep(['init', disk, '--to', `${c.sshd.user}@replica-via-jump:${replica}`, '--ssh', 'openssh', '--serve-command', 'false', ...args])
        assert.equal(i.code, 0, i.stderr)
        const before = (jump.log().match(/Accepted publickey/g) ?? []).length
        const r = await c.vdrep(['fullsync', disk])
        assert.equal(r.code, 0, r.stderr)
        assert.ok(await cmpEqual(disk, replica))
        await waitFor('the jump host to log the login', () => (jump.log().match(/Accepted publickey/g) ?? []).length > before, 5_000)
        // vdrep check goes the same way (through ssh_config), not straight at the host name.
        const ok = await c.vdrep(['check', disk, '--json'])
        assert.equal(ok.code, 0, ok.stdout + ok.stderr)
        const checks = (JSON.parse(ok.stdout) as {checks: {name: string; status: string}[]}).checks
        const status = (name: string) => checks.find((x) => x.name === name)?.status
        assert.equal(status('host'), 'skip')
        assert.equal(status('login'), 'ok')
        assert.equal(status('receiver-delta'), 'ok')
        assert.equal(status('room'), 'ok')
        // The jump host's key is checked too: with an empty known_hosts for it, nothing passes.
        const emptyKh = path.join(c.dir, 'jump-empty-kh')
        await fs.writeFile(emptyKh, '')
        await fs.writeFile(config, (await fs.readFile(config, 'utf8')).replace(jump.knownHostsFile, emptyKh))
        await scribbleBlocks(disk, BS, 3, 'jump-push')
        const refused = await c.vdrep(['push', disk])
        assert.equal(refused.code, 8, refused.stderr)
        const failed = await c.vdrep(['check', disk, '--json'])
        assert.equal(failed.code, 1, failed.stdout + failed.stderr)
        assert.ok(JSON.parse(failed.stdout).checks.some((x: {status: string}) => x.status === 'fail'))
        assert.equal(await fs.readFile(emptyKh, 'utf8'), '')
      })

      it('says clearly that ssh is missing (exit 2), nothing written', async () => {
        const {disk, replica} = await newDisk('nossh', MiB)
        const r = await vdrep(['fullsync', disk], {env: {...c.env, PATH: '/nonexistent'}})
        assert.equal(r.code, 2, r.stderr)
        assert.match(r.stderr, /needs the ssh program/)
        assert.ok(!(await exists(replica)))
      })
    })
  })
}
