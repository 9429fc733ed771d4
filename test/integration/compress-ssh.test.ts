// Compression on the wire over a real sshd and `vdrep serve`: a full sync and a push with
// --compress 3 leave replicas identical to their sources (cmp) while fewer bytes travel (the
// client's result and the receiver's session log both count them), --compress none and a host
// without zstd send raw and say why, and auto on loopback settles off or at the cheapest level.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import net from 'node:net'
import {collect, json, startVdrep, vdrep} from '../helpers/cli.js'
import {cmpEqual, MiB, SshCycle, waitFor} from '../helpers/cycle.js'
import {freePort} from '../helpers/sshd.js'
import {decodeFrameHeader, encodeFrameHeader, FRAME_HEADER_SIZE, FrameType} from '../../src/core/protocol/frame.js'
import {encodeError, HelloFlag} from '../../src/core/protocol/messages.js'
import {makeMixedDisk, makeRealMixedDisk} from '../helpers/disks.js'
import type {FullsyncResult} from '../../src/core/fullsync/client.js'
import type {PushResult} from '../../src/core/delta/push.js'

const BS = 64 * 1024

/** Overwrite `count` blocks from `first` on with text that compresses. */
async function writeText(disk: string, first: number, count: number, tag: string): Promise<void> {
  const line = Buffer.from(`${tag}: log line with a counter and some words that repeat, as logs do\n`)
  const buf = Buffer.alloc(count * BS)
  for (let p = 0; p < buf.length; p += line.length) line.copy(buf, p)
  const fh = await fs.open(disk, 'r+')
  try {
    await fh.write(buf, 0, buf.length, first * BS)
  } finally {
    await fh.close()
  }
}

describe('compression on the wire over SSH (real sshd, vdrep serve)', function () {
  this.timeout(120_000)
  let c: SshCycle

  before(async () => {
    c = await SshCycle.start()
  })
  after(async () => {
    await c?.stop()
  })

  /**
   * An older receiver in front of the real one: a HELLO with a flag it does not know (COMPRESS)
   * gets ERROR BAD_FLAGS, as a vdrep without compression answers; anything else is passed
   * through to `port`. Counts the refusals.
   */
  async function oldReceiver(port: number): Promise<{port: number; refused: () => number; close: () => void}> {
    let refused = 0
    const server = net.createServer((sock) => {
      let buf = Buffer.alloc(0)
      const onData = (d: Buffer) => {
        buf = Buffer.concat([buf, d])
        if (buf.length < FRAME_HEADER_SIZE) return
        const h = decodeFrameHeader(buf.subarray(0, FRAME_HEADER_SIZE))
        if (buf.length < FRAME_HEADER_SIZE + h.length) return
        sock.off('data', onData)
        // Hold what arrives while the upstream connects: a flowing socket with no reader drops it.
        sock.pause()
        const flags = buf.readUInt32LE(FRAME_HEADER_SIZE + 32) // HELLO.flags
        if (flags & HelloFlag.COMPRESS) {
          refused++
          const e = encodeError({exitCode: 1, code: 'BAD_FLAGS', message: `unknown hello flags 0x${flags.toString(16)}`, hint: ''})
          sock.end(Buffer.concat([encodeFrameHeader(FrameType.ERROR, e.length), e]))
          return
        }
        const up = net.connect(port, '127.0.0.1', () => {
          up.write(buf)
          sock.pipe(up).pipe(sock)
        })
        up.on('error', () => sock.destroy())
        sock.on('error', () => up.destroy())
      }
      sock.on('data', onData)
    })
    const p = await freePort()
    await new Promise<void>((r) => server.listen(p, '127.0.0.1', r))
    return {port: p, refused: () => refused, close: () => server.close()}
  }

  /** `vdrep init` for a receiver on other ports than the cycle's. */
  function initAt(disk: string, replica: string, ports: number[]) {
    const s = c.sshd
    return c.vdrep([
      'init',
      disk,
      '--to',
      c.target(replica),
      '--known-hosts',
      s.knownHostsFile,
      '--identity',
      s.clientKey.path,
      '--fullsync-port',
      String(ports[0]),
      '--delta-port',
      String(ports[1]),
      '--serve-command',
      'false',
    ])
  }

  async function newDisk(name: string, size: number, extra: string[] = [], make = makeMixedDisk): Promise<{disk: string; replica: string}> {
    const disk = path.join(c.dir, `${name}.img`)
    const replica = path.join(c.root, `${name}.img`)
    await make(disk, size, name)
    const i = await c.init(disk, replica, extra)
    assert.equal(i.code, 0, i.stderr)
    return {disk, replica}
  }

  it('a full sync and a push with --compress 3 make exact replicas and send fewer bytes', async () => {
    const {disk, replica} = await newDisk('z3', 16 * MiB, ['--compress', '3'])
    const logMark = c.serve.log.length
    const f = await c.vdrep(['fullsync', disk, '--json'])
    assert.equal(f.code, 0, f.stderr)
    const fr = json<FullsyncResult>(f)
    assert.ok(await cmpEqual(disk, replica), 'the compressed full sync left a replica that differs')
    assert.equal(fr.compression.codec, 'zstd')
    assert.deepEqual(fr.compression.stats?.levels, [3])
    assert.ok((fr.compression.stats?.runs ?? 0) > 0, 'no run went compressed')
    assert.ok(fr.wireBytes < fr.bytesSent * 0.8, `wire ${fr.wireBytes} vs raw ${fr.bytesSent}`)
    // The receiver counts what it decompressed, independently of the client's figures.
    const m = /(\d+) compressed runs \(zstd\): (\d+) bytes on the wire for (\d+) bytes of blocks/.exec(c.serve.log.slice(logMark))
    assert.ok(m, `no compression line in the receiver's log: ${c.serve.log.slice(logMark)}`)
    assert.ok(Number(m[2]) < Number(m[3]))

    await writeText(disk, 10, 12, 'push one')
    const p = await c.vdrep(['push', disk, '--json'])
    assert.equal(p.code, 0, p.stderr)
    const pr = json<PushResult>(p)
    assert.equal(pr.mode, 'delta')
    assert.ok(await cmpEqual(disk, replica), 'the compressed push left a replica that differs')
    assert.equal(pr.compression?.codec, 'zstd')
    assert.ok((pr.compression?.stats?.runs ?? 0) > 0)
    assert.ok((pr.wireBytes as number) < pr.bytesSent / 4, `wire ${pr.wireBytes} vs raw ${pr.bytesSent}`)
  })

  it('--compress none and a client without zstd send raw and say why', async () => {
    const {disk, replica} = await newDisk('raw', 8 * MiB)
    const f = await c.vdrep(['fullsync', disk, '--json', '--compress', 'none'])
    assert.equal(f.code, 0, f.stderr)
    const fr = json<FullsyncResult>(f)
    assert.equal(fr.compression.codec, 'none')
    assert.match(fr.compression.why ?? '', /--compress none/)
    assert.ok(await cmpEqual(disk, replica))
    await writeText(disk, 3, 4, 'no zstd')
    const p = await vdrep(['push', disk, '--json'], {env: {...c.env, VDREP_NO_COMPRESSION: '1'}})
    assert.equal(p.code, 0, p.stderr)
    const pr = json<PushResult>(p)
    assert.equal(pr.compression?.codec, 'none')
    assert.match(pr.compression?.why ?? '', /no zstd/)
    assert.equal(pr.wireBytes, pr.bytesSent + 4 * 40)
    assert.ok(await cmpEqual(disk, replica))
  })

  it('auto on loopback ends off or at the cheapest level, and the replica is exact', async () => {
    const {disk, replica} = await newDisk('auto', 96 * MiB, [], makeRealMixedDisk)
    const f = await c.vdrep(['fullsync', disk, '--json'])
    assert.equal(f.code, 0, f.stderr)
    const fr = json<FullsyncResult>(f)
    assert.ok(await cmpEqual(disk, replica))
    assert.equal(fr.compression.setting, 'auto')
    assert.ok([0, 1].includes(fr.compression.stats?.finalLevel ?? -1), JSON.stringify(fr.compression))
  })

  it('an older receiver refuses the offer: the client asks again without it and sends raw (full sync and push)', async () => {
    const fullsyncOld = await oldReceiver(c.serve.ports[0])
    const deltaOld = await oldReceiver(c.serve.ports[1])
    try {
      const disk = path.join(c.dir, 'old.img')
      const replica = path.join(c.root, 'old.img')
      await makeMixedDisk(disk, 4 * MiB, 'old')
      const i = await initAt(disk, replica, [fullsyncOld.port, deltaOld.port])
      assert.equal(i.code, 0, i.stderr)
      const f = await c.vdrep(['fullsync', disk, '--json', '--compress', '3'])
      assert.equal(f.code, 0, f.stderr)
      const fr = json<FullsyncResult>(f)
      // Refused once for COMPRESS, and once more when the SSH carrier first takes the refusal for
      // one of KEEPALIVE (it asks again without that flag, transport/ssh-carrier.ts) before the
      // engine drops the offer.
      assert.ok(fullsyncOld.refused() >= 1 && fullsyncOld.refused() <= 2, `${fullsyncOld.refused()} refusals`)
      assert.equal(fr.compression.codec, 'none')
      assert.match(fr.compression.why ?? '', /refused the offer/)
      assert.ok(await cmpEqual(disk, replica))
      await writeText(disk, 5, 3, 'old receiver')
      const p = await c.vdrep(['push', disk, '--json', '--compress', '3'])
      assert.equal(p.code, 0, p.stderr)
      const pr = json<PushResult>(p)
      assert.ok(deltaOld.refused() >= 1 && deltaOld.refused() <= 2, `${deltaOld.refused()} refusals`)
      assert.equal(pr.mode, 'delta')
      assert.equal(pr.compression?.codec, 'none')
      assert.ok(await cmpEqual(disk, replica))
    } finally {
      fullsyncOld.close()
      deltaOld.close()
    }
  })

  it('a receiver without zstd answers no codec: the client sends raw and says why', async () => {
    const ports = [await freePort(), await freePort()]
    const serve = startVdrep(['serve', '--root', c.root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])], {
      env: {VDREP_NO_COMPRESSION: '1'},
    })
    let log = ''
    serve.stderr!.on('data', (d: Buffer) => (log += d.toString()))
    const done = collect(serve)
    try {
      await waitFor('the second receiver to listen', () => /listening on/.test(log), 15_000)
      const disk = path.join(c.dir, 'nozstd.img')
      const replica = path.join(c.root, 'nozstd.img')
      await makeMixedDisk(disk, 4 * MiB, 'nozstd')
      const i = await initAt(disk, replica, ports)
      assert.equal(i.code, 0, i.stderr)
      const f = await c.vdrep(['fullsync', disk, '--json', '--compress', '3'])
      assert.equal(f.code, 0, f.stderr)
      const fr = json<FullsyncResult>(f)
      assert.equal(fr.compression.codec, 'none')
      assert.match(fr.compression.why ?? '', /no codec in common/)
      assert.ok(await cmpEqual(disk, replica))
    } finally {
      serve.kill('SIGTERM')
      await done
    }
  })

  it('status --json shows the disk setting', async () => {
    const {disk} = await newDisk('st', 1 * MiB, ['--compress', '5'])
    const r = await c.vdrep(['status', disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(json<{disks: {compress: string}[]}>(r).disks[0].compress, '5')
  })
})
