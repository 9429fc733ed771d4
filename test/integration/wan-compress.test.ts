// Compression over a real slow link: a replica namespace joined by a veth pair shaped to
// 100 Mbit/s with tbf (test/helpers/netns.ts), sshd and `vdrep serve` inside it, the client
// outside. With --compress auto the full sync and a push of text blocks climb to compression
// (the link bounds them), send fewer bytes than they stand for, and leave exact replicas. The
// full sync compresses from its first windows: its wire bytes are within 5% of level 1's (auto
// once measured raw first, or went raw on a measure taken while the link's buffers filled).
import assert from 'node:assert/strict'
import type {ChildProcess} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {json, vdrep} from '../helpers/cli.js'
import {cmpEqual, MiB} from '../helpers/cycle.js'
import {makeRealMixedDisk, seededText, tempDir} from '../helpers/disks.js'
import {markChanged, blockRange} from '../helpers/change-record.js'
import {createWan, netnsUnavailable, startServeIn, type Wan} from '../helpers/netns.js'
import {freePort, startSshd, type Sshd} from '../helpers/sshd.js'
import type {FullsyncResult} from '../../src/core/fullsync/client.js'
import type {PushResult} from '../../src/core/delta/push.js'

const BS = 64 * 1024

describe('compression over a 100 Mbit/s link (netns + veth + tbf)', function () {
  this.timeout(180_000)
  const why = netnsUnavailable()
  let wan: Wan | undefined
  let sshd: Sshd | undefined
  let serve: ChildProcess | undefined
  let dir: string

  before(async function () {
    if (why) {
      console.log(`    skipped: no network namespace can be made here: ${why}`)
      this.skip()
    }
    wan = await createWan({rate: '100mbit'})
    sshd = await startSshd({netns: wan.ns, listenAddress: wan.replicaIp})
    dir = await tempDir('vdrep-wan-')
    await fs.mkdir(path.join(dir, 'root'))
    await fs.mkdir(path.join(dir, 'home'))
  })
  after(async () => {
    serve?.kill('SIGTERM')
    await sshd?.stop()
    await wan?.close()
    if (dir) await fs.rm(dir, {recursive: true, force: true})
  })

  it('auto compresses where the link bounds the transfer; full sync and push leave exact replicas', async () => {
    const w = wan as Wan
    const s = sshd as Sshd
    const ports: [number, number] = [await freePort(), await freePort()]
    serve = await startServeIn(w, path.join(dir, 'root'), ports)
    const env = {HOME: path.join(dir, 'home'), SSH_AUTH_SOCK: ''}
    const disk = path.join(dir, 'wan.img')
    const replica = path.join(dir, 'root', 'wan.img')
    await makeRealMixedDisk(disk, 64 * MiB, 'wan')
    const args = ['--known-hosts', s.knownHostsFile, '--identity', s.clientKey.path, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])]
    const init = await vdrep(['init', disk, '--to', `${s.user}@${w.replicaIp}:${s.port}:${replica}`, ...args, '--serve-command', 'false'], {env})
    assert.equal(init.code, 0, init.stderr)

    const f = await vdrep(['fullsync', disk, '--json'], {env})
    assert.equal(f.code, 0, f.stderr)
    const fr = json<FullsyncResult>(f)
    assert.ok(await cmpEqual(disk, replica), 'the full sync over the WAN left a replica that differs')
    assert.equal(fr.compression.codec, 'zstd', JSON.stringify(fr.compression))
    assert.ok((fr.compression.stats?.runs ?? 0) > 0, `auto never compressed on a 100 Mbit/s link: ${JSON.stringify(fr.compression)}`)
    assert.ok(fr.wireBytes < fr.bytesSent * 0.85, `wire ${fr.wireBytes} for ${fr.bytesSent} raw`)

    // The same full sync at level 1: auto's bytes on the wire are close to it.
    await fs.rm(replica)
    await fs.rm(`${replica}.vdrep`, {force: true})
    const f1 = await vdrep(['fullsync', disk, '--json', '--compress', '1'], {env})
    assert.equal(f1.code, 0, f1.stderr)
    const f1r = json<FullsyncResult>(f1)
    assert.ok(await cmpEqual(disk, replica), 'the level 1 full sync left a replica that differs')
    assert.ok(fr.wireBytes <= f1r.wireBytes * 1.05, `auto sent ${fr.wireBytes} bytes, level 1 ${f1r.wireBytes}: ${JSON.stringify(fr.compression.stats)}`)

    // A push of text blocks (logs, documents): 64 blocks, 4 MiB.
    const fh = await fs.open(disk, 'r+')
    await fh.write(seededText('wan push', 64 * BS), 0, 64 * BS, 100 * BS)
    await fh.close()
    await markChanged(disk, blockRange(100, 64))
    const p = await vdrep(['push', disk, '--json'], {env})
    assert.equal(p.code, 0, p.stderr)
    const pr = json<PushResult>(p)
    assert.equal(pr.mode, 'delta')
    assert.ok(await cmpEqual(disk, replica), 'the push over the WAN left a replica that differs')
    assert.ok((pr.compression?.stats?.runs ?? 0) > 0, JSON.stringify(pr.compression))
    assert.ok((pr.wireBytes as number) < pr.bytesSent * 0.6, `wire ${pr.wireBytes} for ${pr.bytesSent} raw`)
  })
})
