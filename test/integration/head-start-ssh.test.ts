// The head start (src/core/disk/head-start.ts) over SSH, through the real binary, a real
// OpenSSH sshd and `vdrep serve`: the source is checksummed while the login runs, so a login
// cut in that phase must leave everything as it was (the replica's bytes and state, the
// .psf's proof) and the rerun must find every differing block of the seed, those in the chunks
// hashed ahead included.
import assert from 'node:assert/strict'
import {type ChildProcess} from 'node:child_process'
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import {readReplicaState} from '../../src/core/receiver/replica-state.js'
import {collect, json, startVdrep, vdrep, type CliResult} from '../helpers/cli.js'
import {makeMixedDisk, seededBytes, tempDir} from '../helpers/disks.js'
import {freePort, startSshd, type Sshd} from '../helpers/sshd.js'

const MiB = 1 << 20
const BS = 64 * 1024

/**
 * A TCP relay to sshd that, while `cut` is set, drops both sides as soon as the server has
 * answered the client's first packets (inside the key exchange: the login is under way).
 */
async function relay(to: number): Promise<{port: number; cut: boolean; cuts: number; close(): Promise<void>}> {
  const r = {port: 0, cut: false, cuts: 0, close: async () => {}}
  const server = net.createServer((client) => {
    const up = net.connect(to, '127.0.0.1')
    let fromServer = 0
    client.on('error', () => {})
    up.on('error', () => {})
    client.pipe(up)
    up.on('data', (d: Buffer) => {
      fromServer++
      if (r.cut && fromServer >= 2) {
        r.cuts++
        client.destroy()
        up.destroy()
        return
      }
      client.write(d)
    })
    up.on('end', () => client.end())
    client.on('close', () => up.destroy())
  })
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res))
  r.port = (server.address() as net.AddressInfo).port
  r.close = () => new Promise<void>((res) => server.close(() => res()))
  return r
}

describe('fullsync head start over SSH (real sshd)', function () {
  this.timeout(120_000)
  let sshd: Sshd
  let dir: string
  let root: string
  let serve: ChildProcess
  let serveDone: Promise<CliResult>
  let serveLog = ''
  let env: NodeJS.ProcessEnv
  let ports: [number, number]

  before(async () => {
    sshd = await startSshd()
    dir = await tempDir('vdrep-head-')
    root = path.join(dir, 'root')
    await fs.mkdir(root)
    await fs.mkdir(path.join(dir, 'home'))
    ports = [await freePort(), await freePort()]
    serve = startVdrep(['serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])])
    serve.stderr!.on('data', (d: Buffer) => (serveLog += d.toString()))
    serveDone = collect(serve)
    const end = Date.now() + 15_000
    while (!/listening on/.test(serveLog)) {
      if (Date.now() > end || serve.exitCode !== null) throw new Error(`vdrep serve did not start: ${serveLog}`)
      await new Promise((r) => setTimeout(r, 25))
    }
    env = {HOME: path.join(dir, 'home'), SSH_AUTH_SOCK: '', VDREP_TRACE: '1'}
  })
  after(async () => {
    serve.kill('SIGTERM')
    const r = await serveDone
    await sshd.stop()
    await fs.rm(dir, {recursive: true, force: true})
    assert.equal(r.code, 0, `vdrep serve exit: ${r.stderr}`)
  })

  it('a login cut while the source is checksummed ahead changes nothing; the rerun finds every differing block of the seed', async () => {
    const cutter = await relay(sshd.port)
    try {
      const disk = path.join(dir, 'disk.img')
      const replica = path.join(root, 'disk.img')
      const size = 64 * MiB
      await makeMixedDisk(disk, size, 'head')
      const init = await vdrep(
        [
          'init',
          disk,
          '--to',
          `${sshd.user}@127.0.0.1:${cutter.port}:${replica}`,
          '--known-hosts',
          sshd.knownHostsFile,
          '--identity',
          sshd.clientKey.path,
          '--fullsync-port',
          String(ports[0]),
          '--delta-port',
          String(ports[1]),
          '--block-size',
          String(BS),
        ],
        {env: {...env, VDREP_TRACE: ''}},
      )
      assert.equal(init.code, 0, init.stderr)
      // The known_hosts line names sshd's port; the relay's must be known too.
      await fs.appendFile(sshd.knownHostsFile, `${sshd.knownHostsLine().replace(`]:${sshd.port} `, `]:${cutter.port} `)}\n`)
      // The seed: the disk with one block changed in the first chunk and one in the last chunk
      // with data (regions 0 and 62 of makeMixedDisk's random, zero, text, zero).
      await fs.copyFile(disk, replica)
      const changed = [1, 1000]
      const fh = await fs.open(replica, 'r+')
      for (const b of changed) await fh.write(seededBytes(`seed-${b}`, BS), 0, BS, b * BS)
      await fh.close()
      const before = await fs.readFile(replica)
      const beforeStat = await fs.stat(replica)
      const psfBefore = await fs.readFile(`${disk}.psf`)

      cutter.cut = true
      const r = await vdrep(['fullsync', disk, '--json'], {env})
      assert.equal(r.code, 7, `a cut login is a transport failure: ${r.stdout}${r.stderr}`)
      assert.ok(cutter.cuts > 0, 'the relay cut the login')
      assert.match(r.stderr, /head start: begins/, 'the head start ran during the login')
      assert.match(r.stderr, /head start: stopped before use/)
      assert.doesNotMatch(r.stderr, /Unhandled|uncaught|EBADF/i)
      assert.ok((await fs.readFile(replica)).equals(before), 'the replica is untouched')
      assert.equal((await fs.stat(replica)).mtimeMs, beforeStat.mtimeMs)
      assert.equal(await fs.stat(`${replica}.vdrep`).catch(() => undefined), undefined, 'no replica state was begun')
      assert.ok((await fs.readFile(`${disk}.psf`)).equals(psfBefore), 'the change record is as it was')

      cutter.cut = false
      const again = await vdrep(['fullsync', disk, '--json'], {env})
      assert.equal(again.code, 0, again.stderr)
      assert.match(again.stderr, /head start: \d+ chunks hashed/)
      assert.equal(json<{bytesSent: number}>(again).bytesSent, changed.length * BS, 'both differing blocks travel, no more')
      assert.ok((await fs.readFile(replica)).equals(await fs.readFile(disk)))
      assert.equal((await readReplicaState(replica)).state?.complete, true)
    } finally {
      await cutter.close()
    }
  })
})
