import assert from 'node:assert/strict'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir, userInfo} from 'node:os'
import {join} from 'node:path'
import {UsageError} from '../../../../src/core/errors.js'
import {resolveSshHost} from '../../../../src/core/transport/ssh/ssh-config.js'

const CONFIG = `
# vdrep test config
Host replica
  HostName replica.internal.example
  User backup
  Port 2200
  IdentityFile ~/.ssh/replica_key
  IdentityFile %d/keys/%r@%h
  UserKnownHostsFile ~/.ssh/known_hosts.vdrep
  ProxyJump bastion

Host alias-with-key-alias
  HostName 10.0.0.9
  HostKeyAlias replica-keyname
  IdentityAgent ~/agent.sock

Host noagent
  IdentityAgent none

Host badport
  Port twenty

Host *
  User fallback
  Port 2222
  IdentityFile ~/.ssh/everyone
`

describe('ssh-config', () => {
  let dir: string
  let file: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vdrep-sshcfg-'))
    file = join(dir, 'config')
    await writeFile(file, CONFIG)
  })
  after(() => rm(dir, {recursive: true, force: true}))

  it('resolves HostName, User, Port, IdentityFile and UserKnownHostsFile with ~ and % tokens', async () => {
    const s = await resolveSshHost({host: 'replica', configFile: file, homeDir: '/home/op'})
    assert.equal(s.alias, 'replica')
    assert.equal(s.hostName, 'replica.internal.example')
    assert.equal(s.user, 'backup')
    assert.equal(s.port, 2200)
    assert.deepEqual(s.identityFiles, ['/home/op/.ssh/replica_key', '/home/op/keys/backup@replica.internal.example', '/home/op/.ssh/everyone'])
    assert.equal(s.knownHostsFile, '/home/op/.ssh/known_hosts.vdrep')
    assert.deepEqual(s.ignored, ['proxyjump'])
  })

  it('lets the target user and port win over the file', async () => {
    const s = await resolveSshHost({host: 'replica', user: 'root', port: 22, configFile: file, homeDir: '/h'})
    assert.equal(s.user, 'root')
    assert.equal(s.port, 22)
    assert.deepEqual(s.identityFiles[1], '/h/keys/root@replica.internal.example')
  })

  it('applies Host * to other hosts, first value wins', async () => {
    const s = await resolveSshHost({host: 'other.example', configFile: file, homeDir: '/h'})
    assert.equal(s.hostName, 'other.example')
    assert.equal(s.user, 'fallback')
    assert.equal(s.port, 2222)
    assert.deepEqual(s.identityFiles, ['/h/.ssh/everyone'])
    assert.equal(s.knownHostsFile, undefined)
  })

  it('reads HostKeyAlias and IdentityAgent', async () => {
    const s = await resolveSshHost({host: 'alias-with-key-alias', configFile: file, homeDir: '/h'})
    assert.equal(s.hostName, '10.0.0.9')
    assert.equal(s.hostKeyAlias, 'replica-keyname')
    assert.equal(s.identityAgent, '/h/agent.sock')
    assert.equal((await resolveSshHost({host: 'noagent', configFile: file, homeDir: '/h'})).identityAgent, 'none')
  })

  it('uses defaults when the file is missing', async () => {
    const s = await resolveSshHost({host: 'h1', configFile: join(dir, 'nope'), homeDir: '/h'})
    assert.deepEqual(s, {alias: 'h1', hostName: 'h1', user: userInfo().username, port: 22, identityFiles: [], ignored: []})
  })

  it('refuses a bad Port with the file named', async () => {
    await assert.rejects(
      resolveSshHost({host: 'badport', configFile: file, homeDir: '/h'}),
      (err: unknown) => err instanceof UsageError && err.code === 'SSH_CONFIG_BAD' && err.message.includes(file),
    )
  })

  it('does not run Match exec', async () => {
    const marker = join(dir, 'ran')
    const f2 = join(dir, 'config-exec')
    await writeFile(f2, `Match exec "touch ${marker}"\n  User execuser\n`)
    const s = await resolveSshHost({host: 'x', configFile: f2, homeDir: '/h'})
    assert.notEqual(s.user, 'execuser')
    await assert.rejects(import('node:fs/promises').then((fs) => fs.stat(marker)))
  })
})
