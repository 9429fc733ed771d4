// A peer that hangs up is told apart from a peer that breaks the protocol by its class
// (PeerGoneError), not by a code prefix: the tracker's control server stops quietly on it,
// the control client reports the tracker as gone.
import assert from 'node:assert/strict'
import {PassThrough} from 'node:stream'
import {PeerGoneError, ProtocolError} from '../../../src/core/errors.js'
import {SocketReader} from '../../../src/core/transport/socket-reader.js'

describe('a peer that hung up', () => {
  it('is a PeerGoneError (still a ProtocolError) at the end of the stream', async () => {
    const s = new PassThrough()
    const r = new SocketReader(s)
    s.end()
    const err = await r.read(4).then(
      () => undefined,
      (e: unknown) => e,
    )
    assert.ok(err instanceof PeerGoneError, String(err))
    assert.ok(err instanceof ProtocolError)
    assert.equal(err.code, 'NBD_EOF')
  })

  it('is a PeerGoneError when the socket fails', async () => {
    const s = new PassThrough()
    const r = new SocketReader(s)
    const p = r.read(4).then(
      () => undefined,
      (e: unknown) => e,
    )
    s.destroy(Object.assign(new Error('read ECONNRESET'), {code: 'ECONNRESET'}))
    const err = await p
    assert.ok(err instanceof PeerGoneError, String(err))
    assert.ok(err.code === 'NBD_SOCKET' || err.code === 'NBD_EOF', err.code)
  })
})
