// Tests of src/core/native/inet-diag.ts (the netlink sock_diag codec) and of the policy on
// its answers (peer-credentials.ts sockDiagOwner). Expected bytes are written by hand.

import assert from 'node:assert/strict'
import os from 'node:os'

import * as diag from '../../../src/core/native/inet-diag.js'
import {sockDiagOwner} from '../../../src/core/native/peer-credentials.js'

const LE = os.endianness() === 'LE'
/** A host-order u32/u16 as hex (the test machine is little-endian; the codec follows the host). */
const h32 = (n: number) => (LE ? [0, 8, 16, 24] : [24, 16, 8, 0]).map((s) => ((n >>> s) & 0xff).toString(16).padStart(2, '0')).join('')
const h16 = (n: number) => (LE ? [0, 8] : [8, 0]).map((s) => ((n >>> s) & 0xff).toString(16).padStart(2, '0')).join('')

// Peer 127.0.0.1:40000 (0x9c40) talking to our 127.0.0.1:44046 (0xac0e).
const Q: diag.InetDiagQuery = {
  family: diag.AF_INET,
  local: {address: Uint8Array.from([127, 0, 0, 1]), port: 40000},
  remote: {address: Uint8Array.from([127, 0, 0, 1]), port: 44046},
  seq: 7,
}
const SOCKID = '9c40' + 'ac0e' + '7f000001' + '00'.repeat(12) + '7f000001' + '00'.repeat(12) + '00000000' + 'ffffffff' + 'ffffffff'

function answer(opts: {state?: number; uid?: number; inode?: number; seq?: number; sockid?: string; family?: number; type?: number} = {}): Buffer {
  const body =
    (opts.family ?? 2).toString(16).padStart(2, '0') +
    (opts.state ?? 1).toString(16).padStart(2, '0') +
    '0000' +
    (opts.sockid ?? SOCKID) +
    h32(0) +
    h32(0) +
    h32(0) +
    h32(opts.uid ?? 1000) +
    h32(opts.inode ?? 123456)
  return Buffer.from(h32(16 + body.length / 2) + h16(opts.type ?? 20) + h16(0) + h32(opts.seq ?? 7) + h32(0) + body, 'hex')
}

function errorReply(errno: number, seq = 7): Buffer {
  return Buffer.from(h32(36) + h16(2) + h16(0) + h32(seq) + h32(0) + h32(-errno >>> 0) + '00'.repeat(16), 'hex')
}

describe('core/native/inet-diag', function () {
  it('encodes an exact IPv4 query (golden bytes)', () => {
    const want = h32(72) + h16(20) + h16(1) + h32(7) + h32(0) + '02' + '06' + '00' + '00' + 'ffffffff' + SOCKID
    assert.equal(diag.encodeInetDiagRequest(Q).toString('hex'), want)
  })

  it('encodes an IPv6 query with 16-byte addresses', () => {
    const one = new Uint8Array(16)
    one[15] = 1
    const req = diag.encodeInetDiagRequest({family: diag.AF_INET6, local: {address: one, port: 1}, remote: {address: one, port: 2}, seq: 1})
    assert.equal(req.length, 72)
    assert.equal(req[16], 10)
    assert.equal(req.subarray(24, 28).toString('hex'), '00010002')
    assert.equal(req.subarray(28, 44).toString('hex'), '00'.repeat(15) + '01')
  })

  it('refuses to encode a bad address length or port', () => {
    assert.throws(() => diag.encodeInetDiagRequest({...Q, local: {address: new Uint8Array(16), port: 1}}), /4/)
    assert.throws(() => diag.encodeInetDiagRequest({...Q, remote: {address: Q.remote.address, port: 70000}}), /port/)
  })

  it('decodes the answer: state, uid, inode, ends', () => {
    const a = diag.decodeInetDiagReply(answer({state: 1, uid: 1001, inode: 0xdeadbeef}), Q)
    assert.equal(a.kind, 'socket')
    if (a.kind !== 'socket') return
    assert.deepEqual([a.family, a.state, a.uid, a.inode, a.local.port, a.remote.port], [2, 1, 1001, 0xdeadbeef, 40000, 44046])
  })

  it('decodes an error reply (ENOENT: no such socket)', () => {
    assert.deepEqual(diag.decodeInetDiagReply(errorReply(2), Q), {kind: 'error', errno: 2})
  })

  it('refuses an answer about another socket, another sequence, another type, or cut', () => {
    const otherPort = '9c41' + SOCKID.slice(4)
    assert.throws(() => diag.decodeInetDiagReply(answer({sockid: otherPort}), Q), /another socket/)
    assert.throws(() => diag.decodeInetDiagReply(answer({seq: 8}), Q), /sequence/)
    assert.throws(() => diag.decodeInetDiagReply(answer({type: 3}), Q), /type/)
    assert.throws(() => diag.decodeInetDiagReply(errorReply(0), Q), /acknowledgement/)
    const full = answer()
    for (let cut = 0; cut < full.length; cut++) {
      assert.throws(() => diag.decodeInetDiagReply(full.subarray(0, cut), Q), Error, `cut at ${cut}`)
    }
  })

  it('accepts an IPv6 socket on IPv4-mapped addresses for an IPv4 query', () => {
    const mapped = '00'.repeat(10) + 'ffff' + '7f000001'
    const sockid = '9c40ac0e' + mapped + mapped + '00000000ffffffffffffffff'
    const a = diag.decodeInetDiagReply(answer({family: 10, sockid}), Q)
    assert.equal(a.kind, 'socket')
  })

  it('flipping any byte of the ends or header never yields another owner silently', () => {
    const full = answer({uid: 1001})
    // Length, type, sequence; family; ports; the IPv4 source and destination words.
    const checked = [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 16, 20, 21, 22, 23, 24, 25, 26, 27, 40, 41, 42, 43]
    for (const i of checked) {
      const bad = Buffer.from(full)
      bad[i] ^= 0xff
      let result: diag.InetDiagAnswer | undefined
      try {
        result = diag.decodeInetDiagReply(bad, Q)
      } catch {
        continue
      }
      assert.fail(`byte ${i} flipped was accepted: ${JSON.stringify(result)}`)
    }
  })

  describe('sockDiagOwner (the policy)', () => {
    const reply = (buf: Buffer) => (_req: Uint8Array, out: Uint8Array) => {
      out.set(buf)
      return buf.length
    }
    it('a live socket: its uid', () => assert.equal(sockDiagOwner(Q, reply(answer({uid: 1001}))), 1001))
    it('a live root socket: 0', () => assert.equal(sockDiagOwner(Q, reply(answer({uid: 0}))), 0))
    it('inode 0 (a peer that wrote and closed: TIME_WAIT / FIN_WAIT2, orphaned): unknown, never root', () => {
      assert.equal(sockDiagOwner(Q, reply(answer({uid: 0, inode: 0, state: 5}))), undefined)
      assert.equal(sockDiagOwner(Q, reply(answer({uid: 0, inode: 0, state: 4}))), undefined)
    })
    it('TIME_WAIT or a request socket: unknown', () => {
      assert.equal(sockDiagOwner(Q, reply(answer({state: 6}))), undefined)
      assert.equal(sockDiagOwner(Q, reply(answer({state: 12}))), undefined)
    })
    it('gone (ENOENT), a cut reply, a failing query: unknown', () => {
      assert.equal(sockDiagOwner(Q, reply(errorReply(2))), undefined)
      assert.equal(
        sockDiagOwner(Q, () => 5000),
        undefined,
      )
      assert.equal(
        sockDiagOwner(Q, () => {
          throw new Error('EPERM')
        }),
        undefined,
      )
    })
    it('sends the encoded query', () => {
      let sent: Buffer | undefined
      sockDiagOwner(Q, (req, out) => {
        sent = Buffer.from(req)
        out.set(answer())
        return 88
      })
      assert.deepEqual(sent, diag.encodeInetDiagRequest(Q))
    })
  })
})
