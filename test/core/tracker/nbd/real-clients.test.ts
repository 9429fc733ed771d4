// The server against NBD clients vdrep did not write: qemu-io, qemu-img (qemu-utils),
// nbdcopy and nbdinfo (libnbd-bin). After each run the backing file is compared with an
// in-memory model of what the client wrote.

import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {readFile, truncate, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {nativeAvailable} from '../../../../src/core/native/binding.js'
import {FileBackend} from '../../../../src/core/tracker/nbd/file-backend.js'
import {run, runOk, startServer, tempDir, type Started} from './harness.js'

const MiB = 1024 * 1024
const SIZE = 8 * MiB

/** qemu-io commands and what each does to the model. */
type Step = [string, (m: Buffer) => void]
const pattern = (p: number, off: number, len: number): Step => [`write -P ${p} ${off} ${len}`, (m) => m.fill(p, off, off + len)]
const zero = (cmd: string, off: number, len: number): Step => [`${cmd} ${off} ${len}`, (m) => m.fill(0, off, off + len)]
const check = (cmd: string): Step => [cmd, () => {}]

describe('nbd server with real NBD clients', function () {
  this.timeout(120_000)
  let s: Started
  let backend: FileBackend
  let disk: string
  let dir: string
  let cleanup: () => Promise<void>
  let model: Buffer
  let unixUri: string

  beforeEach(async () => {
    ;({dir, cleanup} = await tempDir())
    disk = path.join(dir, 'disk.img')
    await writeFile(disk, '')
    await truncate(disk, SIZE)
    backend = await FileBackend.open(disk)
    s = await startServer(backend, dir)
    model = Buffer.alloc(SIZE)
    unixUri = `nbd+unix:///disk.img?socket=${s.sock}`
  })

  afterEach(async () => {
    await s.server.close()
    await backend.close()
    await cleanup()
  })

  async function qemuIo(uri: string, steps: Step[]): Promise<void> {
    const args = ['-f', 'raw', uri]
    for (const [cmd] of steps) args.push('-c', cmd)
    const out = await runOk('qemu-io', args)
    assert.doesNotMatch(out, /fail|error/i, out)
    for (const [, apply] of steps) apply(model)
  }

  async function assertDiskIsModel(): Promise<void> {
    const bytes = await readFile(disk)
    assert.equal(bytes.length, SIZE)
    const at = bytes.findIndex((b, i) => b !== model[i])
    assert.equal(at, -1, `disk differs from the model at offset ${at}`)
  }

  it('qemu-io over the unix socket: patterns at odd offsets, zeroes, discard, aio, read-back', async () => {
    await qemuIo(unixUri, [
      pattern(0xab, 1000, 3000),
      pattern(0x11, 4097, 1),
      pattern(0x22, 65535, 70001),
      pattern(0x33, MiB, 2 * MiB),
      zero('write -z', 200_000, 100_000), // NO_HOLE
      zero('write -z -u', MiB, MiB), // may punch
      zero('discard', 2 * MiB, 512 * 1024),
      ['aio_write -P 0x44 3145728 65536', (m) => m.fill(0x44, 3 * MiB, 3 * MiB + 65536)],
      ['aio_write -P 0x55 3276800 4096', (m) => m.fill(0x55, 3276800, 3276800 + 4096)],
      check('aio_flush'),
      check('read -P 0xab 1000 3000'),
      check('read -P 0x11 4097 1'),
      check('read -P 0 200000 100000'),
      check('read -P 0 2097152 524288'),
      check('read -P 0x44 3145728 65536'),
      check('flush'),
    ])
    await assertDiskIsModel()
  })

  it('qemu-io over TCP 127.0.0.1: FUA writes, patterns, read-back', async () => {
    await qemuIo(`nbd://127.0.0.1:${s.port}/disk.img`, [
      ['write -f -P 0x66 7 777777', (m) => m.fill(0x66, 7, 7 + 777777)],
      pattern(0x77, SIZE - 513, 513),
      zero('write -z', 100, 50),
      check('read -P 0x77 8388095 513'),
      check('read -P 0 100 50'),
    ])
    await assertDiskIsModel()
  })

  it('qemu-img convert -n writes an image into the export, sparse parts included', async () => {
    const src = path.join(dir, 'src.img')
    const img = Buffer.alloc(SIZE)
    randomBytes(3 * MiB).copy(img, 0)
    randomBytes(MiB).copy(img, 5 * MiB + 4096)
    await writeFile(src, img)
    await backend.write(7 * MiB, Buffer.alloc(MiB, 0xee), false) // must be zeroed by the convert
    await runOk('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, unixUri])
    img.copy(model)
    await assertDiskIsModel()
  })

  it('nbdcopy into the export and back out', async () => {
    const src = path.join(dir, 'src.img')
    const back = path.join(dir, 'back.img')
    const img = randomBytes(SIZE)
    img.fill(0, 2 * MiB, 4 * MiB)
    await writeFile(src, img)
    await runOk('nbdcopy', [src, unixUri])
    img.copy(model)
    await assertDiskIsModel()
    await runOk('nbdcopy', [`nbd://127.0.0.1:${s.port}/disk.img`, back])
    assert.ok((await readFile(back)).equals(img))
  })

  it('nbdinfo --map shows a hole after a discard on a sparse file', async function () {
    if (!nativeAvailable) this.skip() // hole punching and SEEK_HOLE need the native addon
    await qemuIo(unixUri, [pattern(0x5a, 0, MiB), zero('discard', 256 * 1024, 256 * 1024)])
    const out = await runOk('nbdinfo', ['--map', unixUri])
    const rows = out
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
    const at = (off: number): string[] | undefined => rows.find((r) => Number(r[0]) === off)
    assert.deepEqual(at(0)?.slice(1), [String(256 * 1024), '0', 'data'], out)
    assert.deepEqual(at(256 * 1024)?.slice(1), [String(256 * 1024), '3', 'hole,zero'], out)
    assert.deepEqual(at(512 * 1024)?.slice(1, 3), [String(512 * 1024), '0'], out)
    assert.deepEqual(at(MiB)?.slice(1, 3), [String(SIZE - MiB), '3'], out)
    await assertDiskIsModel()
  })

  it('nbdinfo --list and --json describe the export', async () => {
    const list = await runOk('nbdinfo', ['--list', `nbd+unix:///?socket=${s.sock}`])
    assert.match(list, /export="disk\.img"/)
    const info = JSON.parse(await runOk('nbdinfo', ['--json', unixUri])) as {exports: Array<Record<string, unknown>>}
    const e = info.exports[0]
    assert.equal(e['export-size'], SIZE)
    assert.equal(e['can_multi_conn'], true)
    assert.equal(e['can_trim'], true)
    assert.equal(e['block_size_maximum'], 32 * MiB)
    assert.deepEqual(e['contexts'], ['base:allocation'])
  })

  it('two qemu-io clients at once, on unix and TCP, writing disjoint halves', async () => {
    const half = (p: number, base: number): string[] => {
      const args: string[] = []
      for (let i = 0; i < 32; i++) args.push('-c', `aio_write -P ${p} ${base + i * 65536 + 3} 65530`)
      return [...args, '-c', 'aio_flush']
    }
    const [a, b] = await Promise.all([
      run('qemu-io', ['-f', 'raw', unixUri, ...half(0x61, 0)]),
      run('qemu-io', ['-f', 'raw', `nbd://127.0.0.1:${s.port}/disk.img`, ...half(0x62, 4 * MiB)]),
    ])
    assert.equal(a.code, 0, a.stderr)
    assert.equal(b.code, 0, b.stderr)
    for (let i = 0; i < 32; i++) {
      model.fill(0x61, i * 65536 + 3, i * 65536 + 3 + 65530)
      model.fill(0x62, 4 * MiB + i * 65536 + 3, 4 * MiB + i * 65536 + 3 + 65530)
    }
    await assertDiskIsModel()
  })

  it('a client asking for an unknown export fails cleanly and the server keeps serving', async () => {
    const r = await run('qemu-io', ['-f', 'raw', `nbd+unix:///other?socket=${s.sock}`, '-c', 'read 0 512'])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr + r.stdout, /other/)
    await qemuIo(unixUri, [check('read -P 0 0 512')])
    await s.server.close()
    assert.match(s.logs[0], /last refusal: unknown export "other"/)
  })
})
