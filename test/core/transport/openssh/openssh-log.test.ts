// What `ssh -vv` prints, read by OpenSshLog: the channel counts as open only at its own
// confirm (not a ProxyJump hop's, which comes first with another address), or at a
// ControlMaster's session id; debug noise is dropped from the lines kept for errors; lines
// split across chunks are read whole.
import assert from 'node:assert/strict'
import {OpenSshLog} from '../../../../src/core/transport/openssh/openssh-log.js'

const DIRECT = [
  'OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026',
  'debug1: Reading configuration data /tmp/cfg',
  'Authenticated to 127.0.0.1 ([127.0.0.1]:2222) using "publickey".',
  'debug1: channel_connect_stdio_fwd: 127.0.0.1:31031',
  'debug1: channel 0: new stdio-forward [stdio-forward] (inactive timeout: 0)',
  'debug2: channel_input_open_confirmation: channel 0: callback start',
  'debug2: channel 0: open confirm rwindow 2097152 rmax 32768',
]

describe('OpenSshLog (ssh -vv on stderr)', () => {
  it('says opened at the confirm that follows our own stdio forward', () => {
    const log = new OpenSshLog(31031)
    const signals = DIRECT.map((l) => log.feed(`${l}\n`))
    assert.deepEqual(signals.slice(0, -1), Array(DIRECT.length - 1).fill(undefined))
    assert.equal(signals.at(-1), 'opened')
    assert.equal(log.opened, true)
    assert.deepEqual(log.messages(), [], 'the version and "Authenticated to" lines are not failures')
  })

  it("does not take a ProxyJump hop's confirm for ours", () => {
    const log = new OpenSshLog(31031)
    const hop = ['debug1: channel_connect_stdio_fwd: replica:22', 'debug2: channel 0: open confirm rwindow 2097152 rmax 32768']
    for (const l of hop) assert.equal(log.feed(`${l}\n`), undefined)
    assert.equal(log.opened, false)
    assert.equal(log.feed(DIRECT.slice(3).join('\n') + '\n'), 'opened')
  })

  it('takes a ControlMaster session id as opened', () => {
    const log = new OpenSshLog(44046)
    assert.equal(log.feed('debug1: mux_client_request_stdio_fwd: master session id: 2\n'), 'opened')
  })

  it('reads lines split anywhere, and keeps the failure lines', () => {
    const text = `${DIRECT.slice(0, 4).join('\n')}\nchannel 0: open failed: connect failed: Connection refused\nstdio forwarding failed\n`
    for (let cut = 1; cut < text.length; cut += 7) {
      const log = new OpenSshLog(31031)
      log.feed(text.slice(0, cut))
      log.feed(text.slice(cut))
      assert.equal(log.opened, false)
      assert.deepEqual(log.messages(), ['channel 0: open failed: connect failed: Connection refused', 'stdio forwarding failed'])
    }
  })

  it('keeps a bounded number of lines', () => {
    const log = new OpenSshLog(1)
    for (let i = 0; i < 1000; i++) log.feed(`line ${i}\n`)
    assert.equal(log.messages().length, 40)
    assert.equal(log.messages().at(-1), 'line 999')
  })
})
