// ssh2's TCP connection opens before ssh2 is loaded and before the login's keys and known_hosts
// are read (transport/connect.ts, ssh/early-socket.ts), so that sshd's start on the replica host
// overlaps them; the login then takes that socket. A login that fails before connecting closes
// it, and a host that refuses it fails the login as before.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {VdrepError} from '../../../../src/core/errors.js'
import {connectReceiver} from '../../../../src/core/transport/connect.js'
import {freePort} from '../../../helpers/sshd.js'

describe('ssh: the early TCP connection', () => {
  const saved = {HOME: process.env.HOME, SSH_AUTH_SOCK: process.env.SSH_AUTH_SOCK, VDREP_SSH_CONFIG: process.env.VDREP_SSH_CONFIG}
  let dir: string
  let knownHosts: string
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vdrep-early-'))
    knownHosts = path.join(dir, 'known_hosts')
    await fs.writeFile(knownHosts, '')
    await fs.writeFile(path.join(dir, 'ssh_config'), '')
    // No key anywhere: no agent, an empty home, an empty ssh_config.
    process.env.HOME = dir
    delete process.env.SSH_AUTH_SOCK
    process.env.VDREP_SSH_CONFIG = path.join(dir, 'ssh_config')
  })
  afterEach(async () => {
    const restore = (k: 'HOME' | 'SSH_AUTH_SOCK' | 'VDREP_SSH_CONFIG') => {
      if (saved[k] === undefined) Reflect.deleteProperty(process.env, k)
      else process.env[k] = saved[k]
    }
    restore('HOME')
    restore('SSH_AUTH_SOCK')
    restore('VDREP_SSH_CONFIG')
    await fs.rm(dir, {recursive: true, force: true})
  })

  const target = (port: number) => ({kind: 'ssh' as const, host: '127.0.0.1', port, user: 'nobody', path: '/r/replica.img'})

  it('is open before the login reads its keys, and closed when the login fails there', async () => {
    const accepted: net.Socket[] = []
    const closed: Promise<void>[] = []
    const server = net.createServer((s) => {
      accepted.push(s)
      closed.push(new Promise((r) => s.once('close', () => r())))
      s.on('error', () => {})
      s.resume()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as net.AddressInfo).port
    try {
      const err = await connectReceiver(target(port), {port: 31999, ssh: {knownHostsFile: knownHosts}, timeoutMs: 5_000}).then(
        () => assert.fail('logged in without a key'),
        (e: unknown) => e,
      )
      assert.ok(err instanceof VdrepError && err.code === 'SSH_NO_IDENTITY', `got ${String(err)}`)
      assert.equal(accepted.length, 1, 'the TCP connection was not opened before the keys were read')
      await Promise.race([closed[0], new Promise((_, reject) => setTimeout(() => reject(new Error('the early socket was left open')), 2_000))])
    } finally {
      server.close()
    }
  })

  it('refused: the login fails as it did without it (SSH_CONNECT, naming the host)', async () => {
    const key = path.join(dir, 'id_ed25519')
    const {execFileSync} = await import('node:child_process')
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key])
    const port = await freePort()
    const err = await connectReceiver(target(port), {port: 31999, ssh: {knownHostsFile: knownHosts, identityFiles: [key]}, timeoutMs: 5_000}).then(
      () => assert.fail('connected to a closed port'),
      (e: unknown) => e,
    )
    assert.ok(err instanceof VdrepError && err.code === 'SSH_CONNECT', `got ${String(err)}`)
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
  })
})
