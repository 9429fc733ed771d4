// A full sync's client against a receiver that stopped (SIGSTOP, a frozen host) behind an SSH
// tunnel whose buffers still take bytes: the pieces of fullsync/client.ts and stream.ts that
// wait on the receiver (the ssh carrier's watchdog, ReceiverReplies, the ChunkReader's wait
// for lent chunks to come back at checkpoint acks), wired as the client wires them. The
// transport here answers nothing and takes what is written, a drip at a time, up to a
// capacity (sshd's window and the kernel's socket buffers). Two holes this closes, each of
// which kept a `vdrep fullsync --timeout 10s` running for minutes (issue 20, slack at 1):
// - bytes of ours the tunnel took counted as the peer's life, so a dripping tunnel never timed out;
// - the wait for a lent chunk to come back listened to nothing: the watchdog fired, failed the
//   reads and sends, and the chunk loop went on waiting for an ack that could not come.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {Duplex} from 'node:stream'

import {ChunkReader, type ReadableDisk} from '../../../src/core/disk/chunk-reader.js'
import {ReceiverReplies} from '../../../src/core/fullsync/client-replies.js'
import {FrameType} from '../../../src/core/protocol/frame.js'
import {encodeDataFields} from '../../../src/core/protocol/messages.js'
import {sshCarrier} from '../../../src/core/transport/ssh-carrier.js'
import {seededBytes, tempDir} from '../../helpers/disks.js'

const KiB = 1024
const BS = 64 * KiB
const CHUNK = 256 * KiB
const TIMEOUT_MS = 600

/** A tunnel to a stopped receiver: nothing comes back; writes are taken, `dripMs` apart, up to `capacity` bytes. */
class StoppedTunnel extends Duplex {
  sentBytes = 0

  constructor(
    private readonly capacity: number,
    private readonly dripMs: number,
  ) {
    super({writableHighWaterMark: 64 * KiB})
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.sentBytes + chunk.length > this.capacity) return // full: never taken, as behind a stopped process
    setTimeout(() => {
      this.sentBytes += chunk.length
      cb()
    }, this.dripMs)
  }
}

async function diskOf(dir: string, size: number): Promise<{disk: ReadableDisk; close: () => Promise<void>}> {
  const file = path.join(dir, 'src.img')
  await fs.writeFile(file, seededBytes('stopped-receiver', size))
  const fh = await fs.open(file, 'r')
  const disk: ReadableDisk = {
    fd: fh.fd,
    async readAt(buf: Buffer, len: number, pos: number): Promise<Buffer> {
      await fh.read(buf, 0, len, pos)
      return buf.subarray(0, len)
    },
  }
  return {disk, close: () => fh.close()}
}

/**
 * streamDisk's shape: every chunk is kept (lent to the transport) and sent as DATA frames; the
 * reader waits for room once `maxKept` chunks are out. Resolves with how it ended.
 */
async function syncAgainst(tunnel: StoppedTunnel, disk: ReadableDisk, size: number, maxKept: number): Promise<{err?: Error; ms: number}> {
  const conn = sshCarrier({
    stream: tunnel,
    replicaPath: 'r.img',
    reopen: () => Promise.reject(new Error('not reopened')),
    release: async () => {},
    timeoutMs: TIMEOUT_MS,
    label: 'backup@replica:22 (port 31031)',
  })
  const replies = new ReceiverReplies(conn.frames, (upto) => chunks.releaseUpTo(upto))
  const chunks = new ChunkReader(disk, size, BS, CHUNK, maxKept)
  replies.whenFailed((err) => chunks.abort(err)) // as fullsync/client.ts does
  const t0 = performance.now()
  try {
    await conn.writer.send(FrameType.HELLO, Buffer.alloc(8))
    for await (const chunk of chunks.chunks()) {
      chunk.keep()
      for (let i = 0; i < chunk.count; i++) {
        const view = (chunk.data as Buffer).subarray(i * BS, (i + 1) * BS)
        await conn.writer.send(FrameType.DATA, encodeDataFields(chunk.first + i, Buffer.alloc(32)), view)
      }
    }
    return {ms: performance.now() - t0}
  } catch (err) {
    return {err: err as Error, ms: performance.now() - t0}
  } finally {
    conn.abort()
  }
}

/** Fails the test instead of hanging it when the sync outlives the deadline. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new assert.AssertionError({message: `${what}: still running ${ms} ms later`})), ms)
  })
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}

describe('full sync against a stopped receiver whose tunnel still takes bytes (--timeout)', function () {
  this.timeout(20_000)
  let dir: string
  before(async () => {
    dir = await tempDir()
  })
  after(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('a tunnel that drips our bytes away for longer than the timeout: PEER_TIMEOUT within the timeout, not when the drip ends', async () => {
    const size = 64 * CHUNK // 16 MiB: at a block per 20 ms, ~5 s of drip
    const {disk, close} = await diskOf(dir, size)
    try {
      const r = await within(syncAgainst(new StoppedTunnel(Number.MAX_SAFE_INTEGER, 20), disk, size, 1024), TIMEOUT_MS + 2_500, 'the dripping sync')
      assert.equal((r.err as {code?: string} | undefined)?.code, 'PEER_TIMEOUT', `ended with ${r.err?.message ?? 'success'}`)
      assert.match(r.err!.message, /sent nothing/)
      assert.ok(r.ms < TIMEOUT_MS + 2_000, `took ${r.ms} ms`)
    } finally {
      await close()
    }
  })

  it('the chunk loop waiting for a lent chunk to come back (slack 1): the watchdog ends that wait too', async () => {
    const size = 16 * CHUNK
    const {disk, close} = await diskOf(dir, size)
    try {
      // Two chunks out (maxKept 2) fit in what the tunnel takes: the loop then waits for room,
      // with every write done, which is where the old client stayed.
      const r = await within(syncAgainst(new StoppedTunnel(4 * CHUNK, 1), disk, size, 2), TIMEOUT_MS + 2_500, 'the sync waiting for room')
      assert.equal((r.err as {code?: string} | undefined)?.code, 'PEER_TIMEOUT', `ended with ${r.err?.message ?? 'success'}`)
      assert.ok(r.ms < TIMEOUT_MS + 2_000, `took ${r.ms} ms`)
    } finally {
      await close()
    }
  })

  it('a chunk reader aborted before its wait, and one aborted during it, both fail with the error', async () => {
    const size = 8 * CHUNK
    const {disk, close} = await diskOf(dir, size)
    try {
      for (const when of ['before', 'during'] as const) {
        const chunks = new ChunkReader(disk, size, BS, CHUNK, 1)
        const gone = new Error(`gone ${when}`)
        if (when === 'before') chunks.abort(gone)
        const loop = (async () => {
          for await (const chunk of chunks.chunks()) chunk.keep()
        })()
        if (when === 'during') setTimeout(() => chunks.abort(gone), 50)
        await assert.rejects(within(loop, 2_000, `aborted ${when}`), gone)
      }
    } finally {
      await close()
    }
  })
})
