// The ssh command lines: vdrep's host-key and cron rules forced with -o (which wins over
// ssh_config), the disk's known_hosts as the only one, and the host after `--` so a host can
// never be read as an option.
import assert from 'node:assert/strict'
import {execArgs, tunnelArgs} from '../../../../src/core/transport/openssh/openssh-args.js'

const opts = {host: 'replica', user: 'backup', port: 2222, identityFiles: ['/k/id'], knownHostsFile: '/k/known hosts'}

function option(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length - 1; i++) if (args[i] === '-o' && args[i + 1].startsWith(`${name}=`)) return args[i + 1].slice(name.length + 1)
  return undefined
}

describe('OpenSSH command lines', () => {
  it('a tunnel: -W to the loopback port, strict host keys, batch mode, the host last after --', () => {
    const a = tunnelArgs(opts, 31031)
    assert.equal(option(a, 'StrictHostKeyChecking'), 'yes')
    assert.equal(option(a, 'BatchMode'), 'yes')
    assert.equal(option(a, 'UpdateHostKeys'), 'no')
    assert.equal(option(a, 'UserKnownHostsFile'), '"/k/known hosts"')
    assert.equal(option(a, 'GlobalKnownHostsFile'), 'none')
    assert.deepEqual(a.slice(-4), ['-W', '127.0.0.1:31031', '--', 'replica'])
    assert.deepEqual(a.slice(a.indexOf('-i'), a.indexOf('-i') + 2), ['-i', '/k/id'])
    assert.deepEqual(a.slice(a.indexOf('-l'), a.indexOf('-l') + 4), ['-l', 'backup', '-p', '2222'])
  })

  it('accept-new only when asked; no known_hosts forced when the settings name none', () => {
    const a = tunnelArgs({host: 'r', acceptNewHostKey: true}, 1)
    assert.equal(option(a, 'StrictHostKeyChecking'), 'accept-new')
    assert.equal(option(a, 'UserKnownHostsFile'), undefined)
    assert.ok(!a.includes('-l') && !a.includes('-p'))
  })

  it('a remote command: no TTY, stdin closed, the command one argument after the host', () => {
    const a = execArgs(opts, 'vdrep serve --daemon')
    assert.deepEqual(a.slice(-5), ['-T', '-n', '--', 'replica', 'vdrep serve --daemon'])
    assert.ok(!a.includes('-vv'))
  })
})
