// Test harness for the NBD server tests: an in-memory backend, a temp folder, a server
// started in-process, a raw socket client speaking bytes written by hand, and a runner
// for the real NBD clients (qemu-io, qemu-img, nbdcopy, nbdinfo).

import {execFile} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type {NbdBackend, NbdExtent} from '../../../../src/core/tracker/nbd/backend.js'
import {NbdServer, type NbdServerOptions} from '../../../../src/core/tracker/nbd/server.js'

export async function tempDir(): Promise<{dir: string; cleanup: () => Promise<void>}> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vdrep-nbd-'))
  return {dir, cleanup: () => rm(dir, {recursive: true, force: true})}
}

/** An export held in a Buffer; each call can be delayed and every call is recorded. */
export class MemoryBackend implements NbdBackend {
  readonly data: Buffer
  readonly calls: string[] = []
  /** Milliseconds to wait before serving a call, by kind ('read', 'write'...), or per offset. */
  delay: (kind: string, offset: number) => number = () => 0
  failWith: ((kind: string, offset: number) => Error | undefined) | null = null

  constructor(
    readonly size: number,
    readonly exportName = 'disk.img',
  ) {
    this.data = Buffer.alloc(size)
  }

  private async step(kind: string, offset: number): Promise<void> {
    this.calls.push(`${kind}@${offset}`)
    const ms = this.delay(kind, offset)
    if (ms > 0) await new Promise((r) => setTimeout(r, ms))
    const err = this.failWith?.(kind, offset)
    if (err) throw err
  }

  async read(offset: number, length: number): Promise<Buffer> {
    await this.step('read', offset)
    return Buffer.from(this.data.subarray(offset, offset + length))
  }

  async write(offset: number, data: Buffer): Promise<void> {
    await this.step('write', offset)
    data.copy(this.data, offset)
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    await this.step('zero', offset)
    this.data.fill(0, offset, offset + length)
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.step('trim', offset)
    this.data.fill(0, offset, offset + length)
  }

  async flush(): Promise<void> {
    await this.step('flush', 0)
  }

  async blockStatus(offset: number, length: number): Promise<NbdExtent[]> {
    await this.step('status', offset)
    const half = Math.max(1, Math.floor(length / 2))
    return [
      {length: half, hole: false, zero: false},
      {length: length - half, hole: true, zero: true},
    ].filter((e) => e.length > 0)
  }
}

export interface Started {
  server: NbdServer
  sock: string
  port: number
  logs: string[]
}

/** Server on a unix socket in `dir` and on TCP 127.0.0.1 port 0. */
export async function startServer(backend: NbdBackend, dir: string, opts: NbdServerOptions = {}): Promise<Started> {
  const logs: string[] = []
  const server = new NbdServer(backend, {logger: (l) => logs.push(l), ...opts})
  const sock = path.join(dir, 'nbd.sock')
  await server.listen(`unix:${sock}`)
  const tcp = await server.listen('127.0.0.1:0')
  if (tcp.kind !== 'tcp') throw new Error('expected a tcp address')
  return {server, sock, port: tcp.port, logs}
}

/** A client socket with exact reads, for speaking NBD bytes by hand. */
export class RawClient {
  private buf = Buffer.alloc(0)
  private ended = false
  private wake: (() => void) | null = null
  readonly closed: Promise<void>

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d])
      this.wake?.()
    })
    this.closed = new Promise((resolve) => {
      const done = (): void => {
        this.ended = true
        this.wake?.()
        resolve()
      }
      socket.on('end', done)
      socket.on('close', done)
      socket.on('error', () => done())
    })
  }

  static connect(where: {path: string} | {port: number; host?: string}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(where as net.NetConnectOpts)
      s.once('connect', () => resolve(new RawClient(s)))
      s.once('error', reject)
    })
  }

  send(hex: string | Buffer): void {
    this.socket.write(typeof hex === 'string' ? Buffer.from(hex.replace(/\s+/g, ''), 'hex') : hex)
  }

  /** Exactly n bytes, or rejects if the server closes first or nothing comes in 5 s. */
  async read(n: number): Promise<Buffer> {
    const deadline = Date.now() + 5000
    while (this.buf.length < n) {
      if (this.ended) throw new Error(`connection closed with ${this.buf.length} of ${n} bytes`)
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} bytes`)
      await new Promise<void>((r) => {
        this.wake = r
        setTimeout(r, 50)
      })
      this.wake = null
    }
    const out = this.buf.subarray(0, n)
    this.buf = this.buf.subarray(n)
    return Buffer.from(out)
  }

  async readHex(n: number): Promise<string> {
    return (await this.read(n)).toString('hex')
  }

  /** Resolves true if the server closes the connection within `ms`. */
  async closesWithin(ms: number): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))])
  }

  /** Greeting, client flags (fixed newstyle + no zeroes), optional structured replies and base:allocation, then GO. */
  async go(name: string, opts: {structured?: boolean; meta?: boolean} = {}): Promise<void> {
    await this.read(18)
    this.send('00000003')
    if (opts.structured) {
      this.send(optionHex(8, ''))
      await this.read(20)
    }
    if (opts.meta) {
      const n = Buffer.from(name)
      const q = Buffer.from('base:allocation')
      const body = Buffer.concat([u32(n.length), n, u32(1), u32(q.length), q])
      this.send(optionHex(10, body.toString('hex')))
      const hdr = await this.read(20)
      await this.read(hdr.readUInt32BE(16)) // META_CONTEXT
      await this.read(20) // ACK
    }
    const n = Buffer.from(name)
    this.send(optionHex(7, Buffer.concat([u32(n.length), n, Buffer.from('0000', 'hex')]).toString('hex')))
    for (;;) {
      const hdr = await this.read(20)
      const type = hdr.readUInt32BE(12)
      await this.read(hdr.readUInt32BE(16))
      if (type === 1) return
      if (type !== 3) throw new Error(`GO failed with reply type 0x${type.toString(16)}`)
    }
  }

  end(): void {
    this.socket.end()
  }
}

export function u32(v: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(v)
  return b
}

/** Hex of an option: IHAVEOPT, option, length, data. */
export function optionHex(option: number, dataHex: string): string {
  return '49484156454f5054' + u32(option).toString('hex') + u32(dataHex.length / 2).toString('hex') + dataHex
}

/** Hex of a request header: magic, flags, type, handle, offset, length. */
export function requestHex(type: number, handle: number, offset: number, length: number, flags = 0): string {
  const b = Buffer.alloc(28)
  b.writeUInt32BE(0x25609513, 0)
  b.writeUInt16BE(flags, 4)
  b.writeUInt16BE(type, 6)
  b.writeBigUInt64BE(BigInt(handle), 8)
  b.writeBigUInt64BE(BigInt(offset), 16)
  b.writeUInt32BE(length, 24)
  return b.toString('hex')
}

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

/** Run a real client; resolves with its exit code and output (never rejects on exit code). */
export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, {timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024}, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & {code?: number | string}) | null
      if (e && e.code === 'ENOENT') return reject(new Error(`${cmd} is not installed (Debian: qemu-utils, libnbd-bin)`))
      resolve({code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr})
    })
  })
}

/** Run and fail the test with the client's own output if it exits non-zero. */
export async function runOk(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}
