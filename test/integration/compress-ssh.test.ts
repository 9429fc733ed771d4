// Compression on the wire over a real sshd and `vdrep serve`: a full sync and a push with
// --compress 3 leave replicas identical to their sources (cmp) while fewer bytes travel (the
// client's result and the receiver's session log both count them), --compress none and a host
// without zstd send raw and say why, and auto on loopback settles off or at the cheapest level.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json} from '../helpers/cli.js'
import {vdrep} from '../helpers/cli.js'
import {cmpEqual, MiB, SshCycle} from '../helpers/cycle.js'
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

  it('status --json shows the disk setting', async () => {
    const {disk} = await newDisk('st', 1 * MiB, ['--compress', '5'])
    const r = await c.vdrep(['status', disk, '--json'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(json<{disks: {compress: string}[]}>(r).disks[0].compress, '5')
  })
})
