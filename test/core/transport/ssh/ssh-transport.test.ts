// Login and host key checks against a real OpenSSH sshd (test/helpers/sshd.ts).

import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {once} from 'node:events'
import {readFile, writeFile} from 'node:fs/promises'
import {createServer, type Socket} from 'node:net'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {HostKeyError, TransportError, UsageError} from '../../../../src/core/errors.js'
import {connectSsh} from '../../../../src/core/transport/ssh/ssh-transport.js'
import {freePort, makeKeyPair, sshOptions, startAgent, startSshd, type Agent, type Sshd} from '../../../helpers/sshd.js'

const run = promisify(execFile)

function isHostKeyError(code: string, ...parts: Array<string | RegExp>) {
  return (err: unknown) => {
    assert.ok(err instanceof HostKeyError, `expected HostKeyError, got ${String(err)}`)
    assert.equal(err.code, code)
    assert.equal(err.exitCode, 8)
    for (const p of parts) {
      if (typeof p === 'string') assert.ok(err.message.includes(p) || err.hint?.includes(p), `missing ${p} in ${err.message} / ${err.hint}`)
      else assert.match(err.message, p)
    }
    return true
  }
}

describe('ssh-transport (real sshd)', function () {
  this.timeout(30_000)
  let sshd: Sshd
  let n = 0
  const tmpFile = () => join(sshd.dir, `kh-${n++}`)

  before(async () => {
    sshd = await startSshd()
  })
  after(async () => {
    await sshd?.stop()
  })

  it('logs in with a key file and checks the host key', async () => {
    const lines: string[] = []
    const t = await connectSsh(sshOptions(sshd, {log: (l) => lines.push(l)}))
    try {
      assert.deepEqual(t.hostKey, {type: 'ssh-ed25519', fingerprint: sshd.fingerprint('ed25519')})
      assert.equal((await t.exec('echo hi')).stdout, 'hi\n')
      assert.ok(
        lines.some((l) => l.includes('is known')),
        lines.join('\n'),
      )
    } finally {
      await t.close()
    }
  })

  describe('with an agent', () => {
    let agent: Agent
    before(async () => {
      agent = await startAgent([sshd.clientKey.path])
    })
    after(() => agent?.stop())

    it('logs in with the agent alone', async () => {
      const lines: string[] = []
      const t = await connectSsh(sshOptions(sshd, {identityFiles: [], useAgent: true, agentSocket: agent.socket, log: (l) => lines.push(l)}))
      try {
        assert.equal((await t.exec('echo agent')).stdout, 'agent\n')
        assert.ok(lines.includes('trying keys from the ssh agent'))
        assert.ok(!lines.some((l) => l.startsWith('trying key ')), lines.join('\n'))
      } finally {
        await t.close()
      }
    })

    it('uses SSH_AUTH_SOCK when no socket is named', async () => {
      const saved = process.env['SSH_AUTH_SOCK']
      process.env['SSH_AUTH_SOCK'] = agent.socket
      try {
        const lines: string[] = []
        const t = await connectSsh(sshOptions(sshd, {identityFiles: [], useAgent: true, log: (l) => lines.push(l)}))
        try {
          assert.ok(lines.includes(`will try the ssh agent at ${agent.socket}`), lines.join('\n'))
          assert.ok(lines.includes('trying keys from the ssh agent'), lines.join('\n'))
          assert.equal((await t.exec('echo via-env')).stdout, 'via-env\n')
        } finally {
          await t.close()
        }
      } finally {
        if (saved === undefined) delete process.env['SSH_AUTH_SOCK']
        else process.env['SSH_AUTH_SOCK'] = saved
      }
    })
  })

  it('fails login with a key the server does not know, naming what was offered', async () => {
    const other = await makeKeyPair(sshd.dir, 'stranger', 'ed25519')
    await assert.rejects(connectSsh(sshOptions(sshd, {identityFiles: [other.path]})), (err: unknown) => {
      assert.ok(err instanceof TransportError)
      assert.equal(err.code, 'SSH_AUTH')
      assert.ok(err.message.includes(other.path), err.message)
      return true
    })
  })

  it('refuses to start without any key', async () => {
    await assert.rejects(connectSsh(sshOptions(sshd, {identityFiles: []})), (err: unknown) => err instanceof TransportError && err.code === 'SSH_NO_IDENTITY')
  })

  it('refuses an explicit identity file that does not exist', async () => {
    await assert.rejects(
      connectSsh(sshOptions(sshd, {identityFiles: [join(sshd.dir, 'nope')]})),
      (err: unknown) => err instanceof UsageError && err.code === 'IDENTITY_UNREADABLE',
    )
  })

  it('refuses an unknown host with its fingerprint and the --accept-new-host-key hint', async () => {
    const file = tmpFile()
    await assert.rejects(
      connectSsh(sshOptions(sshd, {knownHostsFile: file})),
      isHostKeyError('HOST_KEY_UNKNOWN', sshd.fingerprint('ed25519'), `[127.0.0.1]:${sshd.port}`, 'run again with --accept-new-host-key to trust it'),
    )
    await assert.rejects(readFile(file), /ENOENT/)
  })

  it('records an unknown host with acceptNewHostKey, hashed, then knows it', async () => {
    const file = tmpFile()
    const lines: string[] = []
    const t = await connectSsh(sshOptions(sshd, {knownHostsFile: file, acceptNewHostKey: true, log: (l) => lines.push(l)}))
    await t.close()
    const text = await readFile(file, 'utf8')
    assert.match(text, /^\|1\|\S+ ssh-ed25519 \S+\n$/)
    assert.ok(!text.includes('127.0.0.1'))
    assert.ok(
      lines.some((l) => l.startsWith('permanently added')),
      lines.join('\n'),
    )
    const {stdout} = await run('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', file])
    assert.match(stdout, /ssh-ed25519/)
    const again = await connectSsh(sshOptions(sshd, {knownHostsFile: file}))
    await again.close()
    assert.equal(await readFile(file, 'utf8'), text)
  })

  it('refuses a changed host key loudly, even with acceptNewHostKey, and leaves known_hosts alone', async () => {
    const file = tmpFile()
    const impostor = await makeKeyPair(sshd.dir, `impostor-${n}`, 'ed25519')
    const tampered = `# tampered\n[127.0.0.1]:${sshd.port} ${impostor.type} ${impostor.blob.toString('base64')}\n`
    await writeFile(file, tampered)
    for (const acceptNewHostKey of [false, true]) {
      await assert.rejects(
        connectSsh(sshOptions(sshd, {knownHostsFile: file, acceptNewHostKey})),
        isHostKeyError('HOST_KEY_CHANGED', 'REMOTE HOST IDENTIFICATION HAS CHANGED', sshd.fingerprint('ed25519'), `${file}:2`, 'ssh-keygen -R'),
      )
    }
    assert.equal(await readFile(file, 'utf8'), tampered)
  })

  it('asks for the ECDSA key of a host known only by it', async () => {
    const file = tmpFile()
    await writeFile(file, sshd.knownHostsLine('ecdsa') + '\n')
    const t = await connectSsh(sshOptions(sshd, {knownHostsFile: file}))
    try {
      assert.deepEqual(t.hostKey, {type: 'ecdsa-sha2-nistp256', fingerprint: sshd.fingerprint('ecdsa')})
    } finally {
      await t.close()
    }
  })

  it('finds a host known by a hashed entry (ssh-keygen -H)', async () => {
    const file = tmpFile()
    await writeFile(file, sshd.knownHostsLine('ecdsa') + '\n')
    await run('ssh-keygen', ['-H', '-f', file])
    assert.match(await readFile(file, 'utf8'), /^\|1\|/)
    const t = await connectSsh(sshOptions(sshd, {knownHostsFile: file}))
    assert.equal(t.hostKey?.type, 'ecdsa-sha2-nistp256')
    await t.close()
  })

  it('refuses a host that offers none of the key types known for it', async () => {
    const file = tmpFile()
    const p384 = await makeKeyPair(sshd.dir, `p384-${n}`, 'ecdsa')
    await run('ssh-keygen', ['-q', '-t', 'ecdsa', '-b', '384', '-N', '', '-f', `${p384.path}-384`])
    const pub = (await readFile(`${p384.path}-384.pub`, 'utf8')).split(' ')
    await writeFile(file, `[127.0.0.1]:${sshd.port} ${pub[0]} ${pub[1]}\n`)
    await assert.rejects(connectSsh(sshOptions(sshd, {knownHostsFile: file})), isHostKeyError('HOST_KEY_CHANGED', 'ecdsa-sha2-nistp384'))
  })

  it('reports a refused connection as a TransportError', async () => {
    const port = await freePort()
    await assert.rejects(
      connectSsh(sshOptions(sshd, {port})),
      (err: unknown) => err instanceof TransportError && err.code === 'SSH_CONNECT' && /ECONNREFUSED/.test(err.message),
    )
  })

  for (const [name, behave] of [
    ['closes after its banner', (s: Socket) => s.end('SSH-2.0-OpenSSH_9.2\r\n')],
    ['never answers', () => {}],
  ] as Array<[string, (s: Socket) => void]>) {
    it(`fails, without hanging, against a server that ${name}`, async () => {
      const sockets = new Set<Socket>()
      const srv = createServer((s) => {
        sockets.add(s)
        s.on('error', () => {})
        behave(s)
      }).listen(0, '127.0.0.1')
      await once(srv, 'listening')
      try {
        const port = (srv.address() as {port: number}).port
        await assert.rejects(
          connectSsh(sshOptions(sshd, {port, readyTimeoutMs: 1500})),
          (err: unknown) => err instanceof TransportError && /SSH_CONNECT|SSH_TIMEOUT/.test(err.code),
        )
      } finally {
        for (const s of sockets) s.destroy()
        srv.close()
      }
    })
  }

  it('refuses an unknown cipher name as a usage error', async () => {
    await assert.rejects(
      connectSsh(sshOptions(sshd, {ciphers: ['rot13@example.org']})),
      (err: unknown) => err instanceof UsageError && err.code === 'BAD_CIPHER',
    )
  })

  it('uses ~/.ssh/config for HostName, Port and IdentityFile', async () => {
    const config = join(sshd.dir, 'ssh_config')
    await writeFile(config, `Host replica-alias\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  IdentityFile ${sshd.clientKey.path}\n`)
    const t = await connectSsh({
      host: 'replica-alias',
      user: sshd.user,
      configFile: config,
      homeDir: sshd.dir,
      useAgent: false,
      knownHostsFile: sshd.knownHostsFile,
    })
    assert.equal(t.label, `${sshd.user}@127.0.0.1:${sshd.port}`)
    await t.close()
  })

  it('looks the host up in known_hosts under its HostKeyAlias', async () => {
    const config = join(sshd.dir, 'ssh_config_alias')
    const file = tmpFile()
    await writeFile(config, `Host aliased\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  HostKeyAlias Replica-Key\n`)
    await writeFile(file, `replica-key ${sshd.hostKeys.ed25519.type} ${sshd.hostKeys.ed25519.blob.toString('base64')}\n`)
    const lines: string[] = []
    const t = await connectSsh({...sshOptions(sshd, {knownHostsFile: file, log: (l) => lines.push(l)}), host: 'aliased', port: undefined, configFile: config})
    try {
      assert.deepEqual(t.hostKey, {type: 'ssh-ed25519', fingerprint: sshd.fingerprint('ed25519')})
      assert.ok(
        lines.some((l) => l.startsWith(`host replica-key is known (${file}:1)`)),
        lines.join('\n'),
      )
    } finally {
      await t.close()
    }
    // The entry under the host's own name is not what the alias looks up.
    const byName = tmpFile()
    await writeFile(byName, sshd.knownHostsLine('ed25519') + '\n')
    await assert.rejects(
      connectSsh({...sshOptions(sshd, {knownHostsFile: byName}), host: 'aliased', port: undefined, configFile: config}),
      isHostKeyError('HOST_KEY_UNKNOWN', 'replica-key'),
    )
  })
})
