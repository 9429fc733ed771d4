// Fixed newstyle negotiation over a raw socket; every expected byte is written by hand
// from doc/proto.md, never produced by the encoder under test.

import assert from 'node:assert/strict'
import {MemoryBackend, optionHex, RawClient, startServer, tempDir, type Started} from './harness.js'

const GREETING = '4e42444d41474943' + '49484156454f5054' + '0003'
const REP = '0003e889045565a9'
const SIZE_HEX = '0000000000100000' // 1 MiB
// HAS_FLAGS | SEND_FLUSH | SEND_FUA | SEND_TRIM | SEND_WRITE_ZEROES | CAN_MULTI_CONN
const TFLAGS = '016d'
const NAME_HEX = Buffer.from('disk.img').toString('hex')

describe('nbd handshake (raw socket)', () => {
  let s: Started
  let cleanup: () => Promise<void>
  let c: RawClient

  beforeEach(async () => {
    const t = await tempDir()
    cleanup = t.cleanup
    s = await startServer(new MemoryBackend(1024 * 1024), t.dir)
    c = await RawClient.connect({path: s.sock})
  })

  afterEach(async () => {
    c.socket.destroy()
    await s.server.close()
    await cleanup()
  })

  /** Greeting, then client flags (default: fixed newstyle + no zeroes). */
  async function hello(flags = '00000003'): Promise<void> {
    assert.equal(await c.readHex(18), GREETING)
    c.send(flags)
  }

  it('greets with NBDMAGIC, IHAVEOPT and FIXED_NEWSTYLE|NO_ZEROES', async () => {
    assert.equal(await c.readHex(18), GREETING)
  })

  it('drops a client that sets unknown client flags', async () => {
    await hello('00000004')
    assert.equal(await c.closesWithin(2000), true)
  })

  it('drops a client whose option has a bad magic', async () => {
    await hello()
    c.send('4948415645aaaaaa' + '00000008' + '00000000')
    assert.equal(await c.closesWithin(2000), true)
  })

  it('drops a client announcing an option longer than 64 KiB, before reading it', async () => {
    await hello()
    c.send('49484156454f5054' + '00000007' + '00100000')
    assert.equal(await c.closesWithin(2000), true)
  })

  it('answers an unknown option (and STARTTLS) with NBD_REP_ERR_UNSUP and keeps negotiating', async () => {
    await hello()
    c.send(optionHex(0x63, 'aabb'))
    const h = await c.read(20)
    assert.equal(h.subarray(0, 16).toString('hex'), REP + '00000063' + '80000001')
    await c.read(h.readUInt32BE(16)) // message
    c.send(optionHex(5, ''))
    const t = await c.read(20)
    assert.equal(t.subarray(0, 16).toString('hex'), REP + '00000005' + '80000001')
    await c.read(t.readUInt32BE(16))
    c.send(optionHex(8, ''))
    assert.equal(await c.readHex(20), REP + '00000008' + '00000001' + '00000000')
  })

  it('refuses an unknown export with NBD_REP_ERR_UNKNOWN, then GO on the default (empty) name', async () => {
    await hello()
    c.send(optionHex(7, '00000004' + Buffer.from('nope').toString('hex') + '0000'))
    const h = await c.read(20)
    assert.equal(h.subarray(0, 16).toString('hex'), REP + '00000007' + '80000006')
    assert.match((await c.read(h.readUInt32BE(16))).toString(), /unknown export "nope"/)
    c.send(optionHex(7, '00000000' + '0001' + '0003'))
    assert.equal(await c.readHex(32), REP + '00000007' + '00000003' + '0000000c' + '0000' + SIZE_HEX + TFLAGS)
    assert.equal(await c.readHex(34), REP + '00000007' + '00000003' + '0000000e' + '0003' + '00000001' + '00001000' + '02000000')
    assert.equal(await c.readHex(20), REP + '00000007' + '00000001' + '00000000')
    // transmission: a 4-byte read at 0 gets a simple reply with 4 zero bytes
    c.send('25609513' + '0000' + '0000' + '0102030405060708' + '0000000000000000' + '00000004')
    assert.equal(await c.readHex(20), '67446698' + '00000000' + '0102030405060708' + '00000000')
  })

  it('INFO answers NBD_INFO_NAME when asked and stays in negotiation', async () => {
    await hello()
    c.send(optionHex(6, '00000008' + NAME_HEX + '0001' + '0001'))
    assert.equal(await c.readHex(32), REP + '00000006' + '00000003' + '0000000c' + '0000' + SIZE_HEX + TFLAGS)
    assert.equal(await c.readHex(30), REP + '00000006' + '00000003' + '0000000a' + '0001' + NAME_HEX)
    await c.read(34) // block size
    assert.equal(await c.readHex(20), REP + '00000006' + '00000001' + '00000000')
    c.send(optionHex(2, ''))
    assert.equal(await c.readHex(20), REP + '00000002' + '00000001' + '00000000')
    assert.equal(await c.closesWithin(2000), true)
  })

  it('rejects a GO whose name length runs past the option with NBD_REP_ERR_INVALID', async () => {
    await hello()
    c.send(optionHex(7, '00000100' + '6162' + '0000'))
    const h = await c.read(20)
    assert.equal(h.subarray(0, 16).toString('hex'), REP + '00000007' + '80000003')
  })

  it('LIST names the export; LIST with data is invalid', async () => {
    await hello()
    c.send(optionHex(3, ''))
    assert.equal(await c.readHex(32), REP + '00000003' + '00000002' + '0000000c' + '00000008' + NAME_HEX)
    assert.equal(await c.readHex(20), REP + '00000003' + '00000001' + '00000000')
    c.send(optionHex(3, '00'))
    const h = await c.read(20)
    assert.equal(h.subarray(0, 16).toString('hex'), REP + '00000003' + '80000003')
  })

  it('metadata contexts need structured replies, then offer base:allocation', async () => {
    await hello()
    const q = Buffer.from('base:allocation').toString('hex') // 15 bytes
    const body = '00000008' + NAME_HEX + '00000001' + '0000000f' + q
    c.send(optionHex(10, body))
    const h = await c.read(20)
    assert.equal(h.subarray(0, 16).toString('hex'), REP + '0000000a' + '80000003')
    await c.read(h.readUInt32BE(16))
    c.send(optionHex(8, ''))
    await c.read(20)
    c.send(optionHex(9, '00000008' + NAME_HEX + '00000000')) // LIST, no query: everything
    assert.equal(await c.readHex(39), REP + '00000009' + '00000004' + '00000013' + '00000000' + q)
    assert.equal(await c.readHex(20), REP + '00000009' + '00000001' + '00000000')
    c.send(optionHex(10, body))
    assert.equal(await c.readHex(39), REP + '0000000a' + '00000004' + '00000013' + '00000001' + q)
    assert.equal(await c.readHex(20), REP + '0000000a' + '00000001' + '00000000')
    c.send(optionHex(10, '00000008' + NAME_HEX + '00000001' + '00000005' + Buffer.from('x-a:b').toString('hex')))
    assert.equal(await c.readHex(20), REP + '0000000a' + '00000001' + '00000000') // unknown namespace: nothing selected
  })

  it('EXPORT_NAME with NO_ZEROES sends size and flags only', async () => {
    await hello()
    c.send(optionHex(1, NAME_HEX))
    assert.equal(await c.readHex(10), SIZE_HEX + TFLAGS)
    c.send('25609513' + '0000' + '0003' + '00000000000000aa' + '0000000000000000' + '00000000') // flush
    assert.equal(await c.readHex(16), '67446698' + '00000000' + '00000000000000aa')
  })

  it('EXPORT_NAME without NO_ZEROES pads with 124 zero bytes', async () => {
    await hello('00000001')
    c.send(optionHex(1, ''))
    assert.equal(await c.readHex(134), SIZE_HEX + TFLAGS + '00'.repeat(124))
  })

  it('EXPORT_NAME of an unknown export ends the session', async () => {
    await hello()
    c.send(optionHex(1, Buffer.from('other').toString('hex')))
    assert.equal(await c.closesWithin(2000), true)
    await s.server.close()
    assert.match(s.logs.join('\n'), /unknown export "other"/)
  })

  it('drops a client that sends more than 64 options', async () => {
    await hello()
    for (let i = 0; i < 65; i++) c.send(optionHex(8, ''))
    assert.equal(await c.closesWithin(3000), true)
  })
})
