// Tests of src/core/native/peer-credentials.ts: the uid at the other end of TCP and unix
// sockets, from this process and from a second user (created when running as root), with the
// addon and with the fallback forced; and the /proc/net/tcp parsing on its own.

import assert from 'node:assert/strict'
import {type ChildProcess, spawn, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import {__forceFallbackForTests, nativeAvailable} from '../../../src/core/native/binding.js'
import * as native from '../../../src/core/native/peer-credentials.js'
import {FdFixtures} from './fd-fixtures.js'
import {ensureUser} from '../../helpers/users.js'

const OTHER_USER = 'vdreptest'

// peerUid helpers

function listen(opts: net.ListenOptions): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(opts, () => resolve(server))
  })
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode)
    else child.once('exit', (code) => resolve(code))
  })
}

// The client side, run as another user: connect, hold the connection until the server
// ends it. Target ({port, host} or {path}) comes as argv[1] (env may be reset by runuser).
const CLIENT = `
  const s = require('net').connect(JSON.parse(process.argv[1]))
  s.resume()
  s.on('end', () => s.end())
  s.on('error', (e) => { console.error(e.message); process.exit(1) })`

/** Accept one connection made by `connect`, return what peerUid says on our side. */
async function uidSeenBy(server: net.Server, connect: () => ChildProcess | net.Socket): Promise<number | undefined> {
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  const client = connect()
  let failed: Promise<never> | undefined
  if ('pid' in client && 'stdin' in client) {
    failed = exited(client).then((code) => {
      throw new Error(`client exited (${code}) before connecting`)
    })
  }
  const sock = await (failed ? Promise.race([accepted, failed]) : accepted)
  failed?.catch(() => undefined)
  const uid = native.peerUid(sock)
  sock.end()
  if (client instanceof net.Socket) client.destroy()
  else await exited(client)
  sock.destroy()
  return uid
}

function connectAs(user: string, target: object): ChildProcess {
  return spawn('runuser', ['-u', user, '--', process.execPath, '-e', CLIENT, JSON.stringify(target)], {
    cwd: '/',
    stdio: ['ignore', 'inherit', 'inherit'],
  })
}

function connectHere(target: net.NetConnectOpts): net.Socket {
  const s = net.connect(target)
  s.on('error', () => undefined)
  return s
}

/** uid of the test's second user, creating it if needed; undefined when impossible. */
function otherUserUid(): number | undefined {
  if (!ensureUser(OTHER_USER)) return undefined
  return Number(spawnSync('id', ['-u', OTHER_USER], {encoding: 'utf8'}).stdout.trim())
}

async function ipv6Loopback(): Promise<boolean> {
  try {
    await close(await listen({host: '::1', port: 0}))
    return true
  } catch {
    return false
  }
}

describe('core/native/peer-credentials', function () {
  let f: FdFixtures
  before(() => {
    f = new FdFixtures('vdrep-peer-')
  })
  afterEach(() => __forceFallbackForTests(false))
  after(() => f.remove())

  describe('peerUid', function () {
    const me = process.getuid!()
    let other: number | undefined
    let v6: boolean

    before(async () => {
      other = otherUserUid()
      v6 = await ipv6Loopback()
    })

    it('decodes /proc/net/tcp{,6} addresses (little-endian words)', function () {
      if (os.endianness() !== 'LE') this.skip()
      assert.deepEqual(native.decodeProcNetEndpoint('0100007F:1F90'), ['127.0.0.1', 8080])
      assert.deepEqual(native.decodeProcNetEndpoint('0101A8C0:0016'), ['192.168.1.1', 22])
      assert.deepEqual(native.decodeProcNetEndpoint('0000000000000000FFFF00000100007F:1F90'), ['127.0.0.1', 8080])
      assert.deepEqual(native.decodeProcNetEndpoint('00000000000000000000000001000000:0016'), [native.canonicalIp('::1'), 22])
      assert.deepEqual(native.decodeProcNetEndpoint('000080FE00000000FF000000000000FE:0001'), [native.canonicalIp('fe80::ff:fe00:0'), 1])
      assert.equal(native.decodeProcNetEndpoint('zz:1'), undefined)
    })

    it('canonicalIp gives one spelling per address', () => {
      assert.equal(native.canonicalIp('::ffff:127.0.0.1'), '127.0.0.1')
      assert.equal(native.canonicalIp('::FFFF:7f00:1'), '127.0.0.1')
      assert.equal(native.canonicalIp('::1'), '0000:0000:0000:0000:0000:0000:0000:0001')
      assert.equal(native.canonicalIp('fe80::1%lo'), 'fe80:0000:0000:0000:0000:0000:0000:0001')
      assert.equal(native.canonicalIp('1:2:3:4:5:6:7:8'), '0001:0002:0003:0004:0005:0006:0007:0008')
      assert.equal(native.canonicalIp('not an ip'), undefined)
    })

    it('parses /proc/net/tcp lines, skipping the header', () => {
      const text = [
        '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
        '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 1059 1 0 100 0 0 10 0',
        '   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000   997        0 1060 1 0 100 0 0 10 0',
        '',
      ].join('\n')
      const entries = native.parseProcNetTcp(text)
      assert.equal(entries.length, 2)
      assert.equal(entries[1].uid, 997)
      assert.equal(entries[1].state, 1)
      assert.equal(entries[0].state, 10)
      if (os.endianness() === 'LE') assert.equal(entries[1].remotePort, 8080)
    })

    for (const fallback of [false, true]) {
      const mode = fallback ? 'fallback' : 'addon'

      it(`TCP 127.0.0.1 from this process, both ends (${mode})`, async () => {
        __forceFallbackForTests(fallback)
        const server = await listen({host: '127.0.0.1', port: 0})
        const {port} = server.address() as net.AddressInfo
        assert.equal(await uidSeenBy(server, () => connectHere({host: '127.0.0.1', port})), me)
        // And from the client side: its peer is the server's accepted socket.
        const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
        const client = connectHere({host: '127.0.0.1', port})
        await new Promise((resolve) => client.once('connect', resolve))
        const peer = await accepted
        assert.equal(native.peerUid(client), me)
        client.destroy()
        peer.destroy()
        await close(server)
      })

      it(`TCP from another user (${mode})`, async function () {
        if (other === undefined) this.skip()
        __forceFallbackForTests(fallback)
        const server = await listen({host: '127.0.0.1', port: 0})
        const {port} = server.address() as net.AddressInfo
        assert.equal(await uidSeenBy(server, () => connectAs(OTHER_USER, {host: '127.0.0.1', port})), other)
        await close(server)
      })

      it(`TCP over IPv6: ::1 and IPv4-mapped ::ffff:127.0.0.1 (${mode})`, async function () {
        if (!v6 || other === undefined) this.skip()
        __forceFallbackForTests(fallback)
        const server = await listen({host: '::', port: 0})
        const {port} = server.address() as net.AddressInfo
        assert.equal(await uidSeenBy(server, () => connectAs(OTHER_USER, {host: '::1', port})), other)
        // An IPv4 client of a dual-stack server: we see ::ffff:127.0.0.1, it sits in /proc/net/tcp.
        const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
        const child = connectAs(OTHER_USER, {host: '127.0.0.1', port})
        const sock = await accepted
        assert.equal(sock.remoteAddress, '::ffff:127.0.0.1')
        assert.equal(native.peerUid(sock), other)
        sock.end()
        await exited(child)
        await close(server)
      })
    }

    it('TCP: a peer that is gone is unknown', async () => {
      const server = await listen({host: '127.0.0.1', port: 0})
      const {port} = server.address() as net.AddressInfo
      const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
      const client = connectHere({host: '127.0.0.1', port})
      const sock = await accepted
      client.destroy()
      await new Promise((resolve) => sock.once('close', resolve))
      assert.equal(native.peerUid(sock), undefined)
      await close(server)
    })

    for (const mode of ['addon', 'fallback'] as const) {
      it(`TCP: a peer that wrote and closed at once is unknown, not uid 0 (${mode})`, async function () {
        if (mode === 'addon' && !nativeAvailable) this.skip()
        __forceFallbackForTests(mode === 'fallback')
        try {
          const server = await listen({host: '127.0.0.1', port: 0})
          const {port} = server.address() as net.AddressInfo
          server.on('connection', (s) => s.on('error', () => undefined))
          // Connections that send a few bytes and close at once: each peer is left in
          // FIN_WAIT2/TIME_WAIT (uid 0, inode 0 in the kernel's tables) or gone.
          const seen: (number | undefined)[] = []
          for (let i = 0; i < 20; i++) {
            const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
            const client = connectHere({host: '127.0.0.1', port})
            client.write('HELLO', () => client.destroy())
            await new Promise((resolve) => client.once('close', resolve))
            const sock = await accepted
            seen.push(native.peerUid(sock))
            sock.destroy()
          }
          assert.deepEqual(seen, Array<undefined>(20).fill(undefined))
          await close(server)
        } finally {
          __forceFallbackForTests(false)
        }
      })
    }

    it('uses sock_diag with the addon, /proc without it', function () {
      if (!nativeAvailable) this.skip()
      assert.equal(native.tcpPeerMethod(), 'sock_diag')
      __forceFallbackForTests(true)
      try {
        assert.equal(native.tcpPeerMethod(), '/proc')
      } finally {
        __forceFallbackForTests(false)
      }
    })

    it('unix socket: SO_PEERCRED with the addon, from this process and another user', async function () {
      if (!nativeAvailable) this.skip()
      // Its own folder under /tmp: the other user must be able to reach the socket.
      const sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vdrep-native-sock-'))
      try {
        fs.chmodSync(sockDir, 0o755)
        const sockPath = path.join(sockDir, 'ctl.sock')
        const server = await listen({path: sockPath})
        fs.chmodSync(sockPath, 0o777)
        assert.equal(await uidSeenBy(server, () => connectHere({path: sockPath})), me)
        if (other !== undefined) {
          assert.equal(await uidSeenBy(server, () => connectAs(OTHER_USER, {path: sockPath})), other)
        }
        await close(server)
      } finally {
        fs.rmSync(sockDir, {recursive: true, force: true})
      }
    })

    it('unix socket without the addon: unknown', async () => {
      __forceFallbackForTests(true)
      const sockPath = path.join(f.dir, 'fb.sock')
      const server = await listen({path: sockPath})
      assert.equal(await uidSeenBy(server, () => connectHere({path: sockPath})), undefined)
      await close(server)
    })
  })
})
