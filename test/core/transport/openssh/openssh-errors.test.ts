// OpenSSH's failure messages (OpenSSH 9.2's exact text) mapped to the typed errors the ssh2
// carrier raises for the same failure, so the exit code does not depend on the carrier.
import assert from 'node:assert/strict'
import {exitCodeOf} from '../../../../src/core/errors.js'
import {openSshError, spawnError} from '../../../../src/core/transport/openssh/openssh-errors.js'

const cases: Array<[string, string[], string, number]> = [
  [
    'unknown host key',
    ['No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.', 'Host key verification failed.'],
    'HOST_KEY_UNKNOWN',
    8,
  ],
  [
    'changed host key',
    [
      '@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @',
      'Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.',
      'Host key verification failed.',
    ],
    'HOST_KEY_CHANGED',
    8,
  ],
  ['refused login', ['root@127.0.0.1: Permission denied (publickey).'], 'SSH_AUTH', 7],
  ['nothing listens', ['channel 0: open failed: connect failed: Connection refused', 'stdio forwarding failed'], 'TUNNEL_REFUSED', 7],
  ['forwarding prohibited', ['channel 0: open failed: administratively prohibited: open failed', 'stdio forwarding failed'], 'TUNNEL_FAILED', 7],
  ['no common cipher', ['Unable to negotiate with 127.0.0.1 port 2222: no matching cipher found. Their offer: aes256-ctr'], 'BAD_CIPHER', 2],
  ['no sshd', ['ssh: connect to host 127.0.0.1 port 1: Connection refused'], 'SSH_CONNECT', 7],
  ['timeout', ['ssh: connect to host 10.255.255.1 port 22: Connection timed out'], 'SSH_TIMEOUT', 13],
]

describe('openSshError', () => {
  for (const [what, messages, code, exit] of cases) {
    it(`${what}: ${code} (exit ${exit})`, () => {
      const e = openSshError({messages, code: 255, signal: null, opened: false}, 'root@127.0.0.1:2222', '127.0.0.1:31031')
      assert.equal(e.code, code)
      assert.equal(exitCodeOf(e), exit)
      assert.ok(e.message.includes(messages.at(-1)!), e.message)
    })
  }

  it('a tunnel that had opened and then ended badly is a lost connection', () => {
    const e = openSshError({messages: ['Connection to 127.0.0.1 closed by remote host.'], code: 255, signal: null, opened: true}, 'h', 'w')
    assert.equal(e.code, 'SSH_CONNECTION_LOST')
  })

  it('ssh not installed: SSH_PROGRAM_MISSING, exit 2, with the way out', () => {
    const err = Object.assign(new Error('spawn ssh ENOENT'), {code: 'ENOENT'})
    const e = spawnError(err, 'ssh')
    assert.equal(e.code, 'SSH_PROGRAM_MISSING')
    assert.equal(exitCodeOf(e), 2)
    assert.match(e.hint ?? '', /--ssh ssh2/)
  })
})
