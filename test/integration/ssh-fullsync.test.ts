// `vdrep fullsync` to an SSH target, through the real binary, a real OpenSSH sshd on
// 127.0.0.1 (test/helpers/sshd.ts) and `vdrep serve` on free ports: fresh and seeded syncs,
// login by key file and by ssh-agent, host key checks, and a cut SSH connection that the
// next run resumes from.
import assert from 'node:assert/strict'
import {execFile, type ChildProcess} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {readReplicaState} from '../../src/core/receiver/replica-state.js'
import {collect, json, startVdrep, vdrep, type CliResult} from '../helpers/cli.js'
import {makeMixedDisk, scribbleBlocks, seededBytes, tempDir} from '../helpers/disks.js'
import {freePort, makeKeyPair, startAgent, startSshd, type Sshd} from '../helpers/sshd.js'

const run = promisify(execFile)
const MiB = 1 << 20
const BS = 64 * 1024

interface SyncJson {
  bytesSent: number
  bytesCompared: number
  resumedAtBlock: number
  resumedPercent: number
}

async function cmpEqual(a: string, b: string): Promise<boolean> {
  try {
    await run('cmp', ['-s', a, b])
    return true
  } catch {
    return false
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  )
}

describe('fullsync over SSH to vdrep serve (real sshd)', function () {
  this.timeout(120_000)
  let sshd: Sshd
  let dir: string
  let root: string
  let ports: [number, number]
  let serve: ChildProcess
  let serveDone: Promise<CliResult>
  let serveLog = ''
  /** The client sees the harness' files only: no real ~/.ssh, no agent. */
  let env: NodeJS.ProcessEnv

  before(async () => {
    sshd = await startSshd()
    dir = await tempDir('vdrep-ssh-')
    root = path.join(dir, 'root')
    await fs.mkdir(root)
    await fs.mkdir(path.join(dir, 'home'))
    ports = [await freePort(), await freePort()]
    serve = startVdrep(['serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])])
    serve.stderr!.on('data', (d: Buffer) => (serveLog += d.toString()))
    serveDone = collect(serve)
    const end = Date.now() + 15_000
    while (!/listening on/.test(serveLog)) {
      if (Date.now() > end || serve.exitCode !== null) throw new Error(`vdrep serve did not start: ${serveLog}`)
      await new Promise((r) => setTimeout(r, 25))
    }
    env = {HOME: path.join(dir, 'home'), SSH_AUTH_SOCK: ''}
  })
  after(async () => {
    serve.kill('SIGTERM')
    const r = await serveDone
    await sshd.stop()
    await fs.rm(dir, {recursive: true, force: true})
    assert.equal(r.code, 0, `vdrep serve exit: ${r.stderr}`)
  })

  async function initDisk(
    name: string,
    size: number,
    opts: {identity?: boolean; knownHosts?: string; extra?: string[]} = {},
  ): Promise<{disk: string; replica: string}> {
    const disk = path.join(dir, `${name}.img`)
    const replica = path.join(root, `${name}.img`)
    await makeMixedDisk(disk, size, name)
    const args = [
      'init',
      disk,
      '--to',
      `${sshd.user}@127.0.0.1:${sshd.port}:${replica}`,
      '--known-hosts',
      opts.knownHosts ?? sshd.knownHostsFile,
      '--fullsync-port',
      String(ports[0]),
      '--delta-port',
      String(ports[1]),
      ...(opts.extra ?? []),
    ]
    if (opts.identity !== false) args.push('--identity', sshd.clientKey.path)
    const r = await vdrep(args, {env})
    assert.equal(r.code, 0, r.stderr)
    return {disk, replica}
  }

  it('syncs a fresh target: cmp equal, zeros not sent, one log line for the session', async () => {
    const {disk, replica} = await initDisk('fresh', 24 * MiB)
    const r = await vdrep(['fullsync', disk, '--json'], {env})
    assert.equal(r.code, 0, r.stderr)
    const out = json<SyncJson>(r)
    assert.equal(out.bytesSent, 12 * MiB, 'the zero half travels as run lengths')
    assert.ok(await cmpEqual(disk, replica))
    assert.equal((await readReplicaState(replica)).state?.complete, true)
    assert.match(serveLog, new RegExp(`session \\d+ port ${ports[0]} uid \\d+: fullsync ${replica}: proved, ${12 * MiB} bytes written`))
  })

  it('syncs onto a seed: only the differing blocks travel', async () => {
    const {disk, replica} = await initDisk('seeded', 24 * MiB)
    await fs.copyFile(disk, replica)
    await scribbleBlocks(disk, BS, 5, 'seed-change')
    assert.ok(!(await cmpEqual(disk, replica)))
    const r = await vdrep(['fullsync', disk, '--json'], {env})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(json<SyncJson>(r).bytesSent, 5 * BS)
    assert.ok(await cmpEqual(disk, replica))
  })

  it('logs in with a key held by ssh-agent (no identity file)', async () => {
    const agent = await startAgent([sshd.clientKey.path])
    try {
      const {disk, replica} = await initDisk('agent', 4 * MiB, {identity: false})
      const r = await vdrep(['fullsync', disk, '-v'], {env: {...env, SSH_AUTH_SOCK: agent.socket}})
      assert.equal(r.code, 0, r.stderr)
      assert.ok(await cmpEqual(disk, replica))
      const none = await vdrep(['fullsync', disk], {env})
      assert.equal(none.code, 7, 'without the agent there is no key to log in with')
      assert.match(none.stderr, /no ssh key to log in/)
    } finally {
      await agent.stop()
    }
  })

  it('refuses an unknown host key (nothing written) until --accept-new-host-key records it', async () => {
    const kh = path.join(dir, 'empty_known_hosts')
    await fs.writeFile(kh, '')
    const {disk, replica} = await initDisk('unknownhost', 4 * MiB, {knownHosts: kh})
    const r = await vdrep(['fullsync', disk], {env})
    assert.equal(r.code, 8, r.stderr)
    assert.ok(r.stderr.includes(sshd.fingerprint('ed25519')) || r.stderr.includes(sshd.fingerprint('ecdsa')), `names the fingerprint: ${r.stderr}`)
    assert.match(r.stderr, /--accept-new-host-key/)
    assert.ok(!(await exists(replica)), 'nothing may be written')
    const ok = await vdrep(['fullsync', disk, '--accept-new-host-key'], {env})
    assert.equal(ok.code, 0, ok.stderr)
    const recorded = await fs.readFile(kh, 'utf8')
    assert.ok(recorded.includes(sshd.hostKeys.ed25519.blob.toString('base64')), `the key is recorded: ${recorded}`)
    assert.ok(await cmpEqual(disk, replica))
    const again = await vdrep(['fullsync', disk], {env})
    assert.equal(again.code, 0, 'the recorded key is trusted from now on')
  })

  it('refuses a changed host key loudly, even with --accept-new-host-key; nothing written', async () => {
    const other = await makeKeyPair(dir, 'impostor', 'ed25519')
    const kh = path.join(dir, 'changed_known_hosts')
    await fs.writeFile(kh, `[127.0.0.1]:${sshd.port} ${other.type} ${other.blob.toString('base64')}\n`)
    const {disk, replica} = await initDisk('changedhost', 4 * MiB, {knownHosts: kh})
    for (const extra of [[], ['--accept-new-host-key']]) {
      const r = await vdrep(['fullsync', disk, ...extra], {env})
      assert.equal(r.code, 8, r.stderr)
      assert.match(r.stderr, /changed/i)
      assert.ok(r.stderr.includes(sshd.fingerprint('ed25519')), r.stderr)
    }
    assert.ok(!(await exists(replica)))
    assert.equal((await fs.readFile(kh, 'utf8')).split('\n').filter(Boolean).length, 1, 'known_hosts is left alone')
  })

  it('a cut SSH connection fails clearly (exit 7), leaves the replica incomplete, and the rerun resumes to equal', async () => {
    const {disk, replica} = await initDisk('cut', 24 * MiB)
    // Random data all through, so every block travels (slowly, with --bwlimit).
    const fh = await fs.open(disk, 'r+')
    await fh.write(seededBytes('cut-all', 24 * MiB), 0, 24 * MiB, 0)
    await fh.close()
    const child = startVdrep(['fullsync', disk, '--bwlimit', '6M', '--checkpoint-bytes', '1M'], {env})
    const result = collect(child)
    const end = Date.now() + 30_000
    for (;;) {
      const st = await readReplicaState(replica).catch(() => ({state: undefined}))
      if ((st.state?.resumeBlock ?? 0) * BS >= 6 * MiB) break
      if (Date.now() > end) throw new Error('the sync made no progress')
      await new Promise((r) => setTimeout(r, 50))
    }
    assert.ok((await sshd.killSessions()) > 0)
    const r = await result
    assert.equal(r.code, 7, r.stderr)
    assert.match(r.stderr, /ssh connection to .* was cut|closed the connection/)
    if (process.env.VDREP_TEST_DEBUG) console.log(r.stderr)
    const st = (await readReplicaState(replica)).state
    assert.equal(st?.complete, false, 'the replica stays marked incomplete')
    assert.ok((st?.resumeBlock ?? 0) > 0)
    const again = await vdrep(['fullsync', disk], {env})
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stderr, /resuming at \d+%/)
    assert.match(again.stdout, /resumed at [1-9]\d*%/)
    assert.ok(await cmpEqual(disk, replica))
  })
})
