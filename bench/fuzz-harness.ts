// The fuzz harness shared by bench/fuzz-properties.ts: a target runs every case (failures
// are counted, not fatal, up to a cap), a decode counts as clean or refused, and FrameReader
// gets a reference parser written from the spec, a chunked feeder and an allocation meter.
import {once} from 'node:events'
import net from 'node:net'
import {PassThrough} from 'node:stream'
import fc from 'fast-check'
import {VdrepError} from '../src/core/errors.js'
import {FrameType, MAX_PAYLOAD} from '../src/core/protocol/frame.js'
import {FrameReader, type Frame, type FrameSource} from '../src/core/protocol/frame-reader.js'
import {SocketReader} from '../src/core/transport/socket-reader.js'
import {DATA_FIELDS_SIZE} from '../src/core/protocol/messages.js'
import {frameTypes} from './fuzz-arbitraries.js'

export interface FuzzReport {
  name: string
  tried: number
  /** Cases the decoder accepted (the rest it refused with a VdrepError, or failed). */
  accepted: number
  failures: number
  /** The first failing input (hex) and what went wrong. */
  firstFailure?: string
}

export interface FuzzTarget {
  name: string
  run(runs: number, seed: number): Promise<FuzzReport>
}

/** A target stops early once this many cases failed (a regression should not take hours to report). */
export const MAX_FAILURES = 25

/**
 * Every case runs and a failure is counted, not fatal, so the report says how many failed.
 * `check` throws on a failure and returns true when the decoder accepted the input.
 */
export function target<T>(
  name: string,
  arb: fc.Arbitrary<T>,
  check: (v: T) => boolean | Promise<boolean>,
  show: (v: T) => string = (v) => String(v),
): FuzzTarget {
  return {
    name,
    async run(runs, seed) {
      let tried = 0
      let accepted = 0
      let failures = 0
      let firstFailure: string | undefined
      const prop = fc.asyncProperty(arb, async (v) => {
        tried++
        try {
          if (await check(v)) accepted++
        } catch (e) {
          failures++
          firstFailure ??= `seed ${seed}, input ${show(v)}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`
        }
        return failures < MAX_FAILURES
      })
      await fc.check(prop, {numRuns: runs, seed, endOnFailure: true})
      return {name, tried, accepted, failures, firstFailure}
    },
  }
}

export const hexOf = (b: Buffer) => (b.length > 256 ? `${b.subarray(0, 256).toString('hex')}... (${b.length} bytes)` : b.toString('hex'))

/** The decoded value, or undefined when the decoder refused with a VdrepError; anything else escapes. */
export function clean<T>(decode: () => T): T | undefined {
  try {
    return decode()
  } catch (e) {
    if (e instanceof VdrepError) return undefined
    throw e
  }
}

const KNOWN = new Set<number>(frameTypes)
export type RefResult = {frames: Array<{type: number; payload: Buffer}>; end: string | null}

/** Reference framing, written from the spec independently of frame.ts and frame-reader.ts. */
export function referenceParse(b: Buffer): RefResult {
  const frames: RefResult['frames'] = []
  let pos = 0
  for (;;) {
    const left = b.length - pos
    if (left === 0) return {frames, end: null}
    if (left < 8) return {frames, end: 'FRAME_TRUNCATED'}
    if (b[pos] !== 0x56 || b[pos + 1] !== 0x44) return {frames, end: 'FRAME_BAD_MAGIC'}
    if (!KNOWN.has(b[pos + 2])) return {frames, end: 'FRAME_UNKNOWN_TYPE'}
    if (b[pos + 3] !== 0) return {frames, end: 'FRAME_BAD_FLAGS'}
    const length = b[pos + 4] + b[pos + 5] * 2 ** 8 + b[pos + 6] * 2 ** 16 + b[pos + 7] * 2 ** 24
    if (length > MAX_PAYLOAD) return {frames, end: 'FRAME_TOO_LARGE'}
    if (left - 8 < length) return {frames, end: 'FRAME_TRUNCATED'}
    frames.push({type: b[pos + 2], payload: b.subarray(pos + 8, pos + 8 + length)})
    pos += 8 + length
  }
}

type AllocFn = (n: number, ...rest: unknown[]) => Buffer
const ALLOCATORS = ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const

/** Run fn with Buffer's allocators wrapped, returning the largest size asked for. */
export async function largestAllocation(fn: () => Promise<void>): Promise<number> {
  let largest = 0
  const b = Buffer as unknown as Record<(typeof ALLOCATORS)[number], AllocFn>
  const orig = ALLOCATORS.map((k) => b[k])
  ALLOCATORS.forEach((k, i) => {
    b[k] = (n, ...rest) => ((largest = Math.max(largest, n)), orig[i].call(Buffer, n, ...rest))
  })
  try {
    await fn()
  } finally {
    ALLOCATORS.forEach((k, i) => (b[k] = orig[i]))
  }
  return largest
}

const tick = () => new Promise((res) => setImmediate(res))

/** Feed `input` in chunks (cut at `cuts`) through a PassThrough; read frames until the end or an error. */
export async function readThrough(input: Buffer, cuts: number[], end: boolean, hangMs = 2000): Promise<RefResult> {
  const s = new PassThrough()
  const reader = new FrameReader(s)
  const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((x, y) => x - y)
  const writer = (async () => {
    let from = 0
    for (const p of [...points, input.length]) {
      s.write(input.subarray(from, p))
      from = p
      await tick()
    }
    if (end) s.end()
  })()
  const got = await drain(reader, hangMs)
  await writer
  s.destroy()
  return got
}

/** Read frames until the end or a refusal (its code); a reader that does neither in hangMs fails. */
async function drain(reader: FrameSource, hangMs: number): Promise<RefResult> {
  const got: RefResult = {frames: [], end: null}
  let timer: NodeJS.Timeout | undefined
  const hung = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`the reader neither returned nor refused within ${hangMs} ms`)), hangMs)),
  )
  try {
    for (;;) {
      const f: Frame | null = await Promise.race([reader.next(), hung])
      if (!f) break
      // a DATA frame's block comes apart from its fields: on the wire they are one payload
      if (f.body && (f.type !== FrameType.DATA || f.payload.length !== DATA_FIELDS_SIZE))
        throw new Error(`a body on a ${f.type} frame after ${f.payload.length} bytes of fields`)
      // copied before release(): a lent body is a view of memory the reader reuses
      got.frames.push({type: f.type, payload: Buffer.concat([f.payload, f.body ?? Buffer.alloc(0)])})
      f.release?.()
    }
  } catch (e) {
    if (!(e instanceof VdrepError)) throw e
    got.end = e.code
  } finally {
    clearTimeout(timer)
  }
  return got
}

/**
 * A loopback server whose connections are taken over as `vdrep serve` takes them
 * (SocketReader.adopt under a FrameReader): the receiver's own reader, fed over a real TCP socket.
 */
export class SocketFeeder {
  private readers: Array<{resolve: (r: {socket: net.Socket; reader: FrameReader}) => void; reject: (e: Error) => void}> = []

  private constructor(private readonly server: net.Server) {}

  static async start(): Promise<SocketFeeder> {
    const server = net.createServer({pauseOnConnect: true})
    const feeder = new SocketFeeder(server)
    server.on('connection', (sock) => {
      const waiting = feeder.readers.shift()
      const adopted = SocketReader.adopt(sock)
      if (!adopted) {
        sock.destroy()
        waiting?.reject(new Error('this Node does not let a socket be taken over'))
        return
      }
      adopted.socket.on('error', () => {}) // a reset from the test's own client after a refusal
      waiting?.resolve({socket: adopted.socket, reader: new FrameReader(adopted.reader)})
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return feeder
  }

  /** Send `input` in pieces (cut at `cuts`, a pause between them), then end or hold the connection open. */
  async readThrough(input: Buffer, cuts: number[], end: boolean, hangMs = 2000): Promise<RefResult> {
    const accepted = new Promise<{socket: net.Socket; reader: FrameReader}>((resolve, reject) => this.readers.push({resolve, reject}))
    const client = net.connect((this.server.address() as net.AddressInfo).port, '127.0.0.1')
    client.on('error', () => {}) // the reader may refuse and the test close first
    await once(client, 'connect')
    const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((x, y) => x - y)
    // A reader that refused stops reading, so a write may never drain: the writer is aborted.
    const stop = new AbortController()
    const writer = (async () => {
      let from = 0
      for (const p of [...points, input.length]) {
        if (p > from && !client.write(input.subarray(from, p))) await once(client, 'drain', {signal: stop.signal})
        from = p
        await tick()
      }
      if (end) client.end()
    })().catch(() => {})
    const {socket, reader} = await accepted
    try {
      return await drain(reader, hangMs)
    } finally {
      stop.abort()
      client.destroy()
      socket.destroy()
      await writer
    }
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
