// src/core/transport/ssh-carrier.ts over in-memory pairs, with hand-made receivers: the
// HELLO goes out asking for KEEPALIVE; a receiver that agreed keeps a long silence alive with
// keepalives; one that stops (no byte, or not reading) fails the waiting read or write with
// PEER_TIMEOUT; an older receiver that refuses the flag (BAD_FLAGS) is asked again on a new
// tunnel with the frames exactly as the engine sent them, and the engine never sees the refusal.
import assert from 'node:assert/strict'
import type {Duplex} from 'node:stream'
import {FrameType} from '../../../src/core/protocol/frame.js'
import {FrameReader} from '../../../src/core/protocol/frame-reader.js'
import {FrameWriter} from '../../../src/core/protocol/frame-writer.js'
import {decodeHello, encodeError, encodeHello, HelloFlag, SyncMode} from '../../../src/core/protocol/messages.js'
import {duplexPair} from '../../../src/core/transport/duplex-pair.js'
import {sshCarrier} from '../../../src/core/transport/ssh-carrier.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const HELLO = encodeHello({
  version: 2,
  mode: SyncMode.POINTS,
  hashAlgo: 1,
  blockSize: 65536,
  diskSize: 1 << 20,
  replicaId: Buffer.alloc(16, 7),
  flags: HelloFlag.TRUNCATE_REPLICA,
  lastCommit: Buffer.alloc(16),
  nextCommit: Buffer.alloc(16),
  path: 'r.img',
})
const REQUEST = Buffer.from([1, 0, 0])

type Receiver = (reader: FrameReader, writer: FrameWriter, end: Duplex) => Promise<void>

function carrierTo(receivers: Receiver[], timeoutMs = 10_000, highWaterMark?: number) {
  const lines: string[] = []
  let opened = 0
  const open = (): Duplex => {
    const [client, server] = duplexPair(highWaterMark)
    const serve = receivers[opened++]
    if (!serve) throw new Error('no more receivers')
    void serve(new FrameReader(server), new FrameWriter(server), server).catch(() => {})
    return client
  }
  const conn = sshCarrier({
    stream: open(),
    replicaPath: 'r.img',
    reopen: async () => open(),
    release: async () => {},
    timeoutMs,
    label: 'backup@replica:22 (port 44046)',
    log: (l) => lines.push(l),
  })
  return {conn, lines, opened: () => opened}
}

describe('ssh carrier: KEEPALIVE and --timeout', () => {
  it('asks for KEEPALIVE; keepalives through a long silence keep the session; the engine never sees them', async () => {
    const seen: number[] = []
    const {conn} = carrierTo(
      [
        async (r, w) => {
          const h = await r.next()
          seen.push(decodeHello(h!.payload).flags)
          for (let i = 0; i < 8; i++) {
            await sleep(60)
            await w.send(FrameType.KEEPALIVE)
          }
          await w.send(FrameType.HELLO_OK, Buffer.alloc(51))
          w.end()
        },
      ],
      200,
    )
    await conn.writer.send(FrameType.HELLO, HELLO)
    const first = await conn.frames.next()
    assert.equal(first?.type, FrameType.HELLO_OK, 'a 480 ms wait with keepalives under a 200 ms timeout')
    assert.equal(seen[0], HelloFlag.TRUNCATE_REPLICA | HelloFlag.KEEPALIVE)
    assert.equal(await conn.frames.next(), null)
    await conn.close()
  })

  it('a receiver that says nothing: the waiting read fails with PEER_TIMEOUT naming host and phase', async () => {
    const {conn, lines} = carrierTo([async (r) => void (await r.next())], 200)
    const t0 = performance.now()
    await conn.writer.send(FrameType.HELLO, HELLO)
    await assert.rejects(conn.frames.next(), (e: Error & {code?: string}) => e.code === 'PEER_TIMEOUT' && /backup@replica:22.*hello/.test(e.message))
    const took = performance.now() - t0
    assert.ok(took >= 190 && took < 1_500, `gave up after ${took} ms`)
    assert.ok(lines.some((l) => /sent nothing/.test(l)))
    conn.abort()
  })

  it('a receiver that stops reading: the blocked send fails with PEER_TIMEOUT', async () => {
    const {conn} = carrierTo(
      [
        async (r, w) => {
          await r.next()
          await w.send(FrameType.HELLO_OK, Buffer.alloc(51))
          // then reads nothing more: the client's sends fill the pair and wait for drain
        },
      ],
      250,
      64 << 10,
    )
    await conn.writer.send(FrameType.HELLO, HELLO)
    assert.equal((await conn.frames.next())?.type, FrameType.HELLO_OK)
    const block = Buffer.alloc(60_000)
    await assert.rejects(
      (async () => {
        for (let i = 0; i < 1000; i++) await conn.writer.send(FrameType.DATA, Buffer.alloc(40), block)
      })(),
      (e: Error & {code?: string}) => e.code === 'PEER_TIMEOUT',
    )
    conn.abort()
  })

  it('an older receiver refuses the flag: asked again on a new tunnel without it, frames as sent, said once', async () => {
    const got: Array<{flags: number; next: Buffer | undefined}> = []
    const old: Receiver = async (r, w) => {
      const h = decodeHello((await r.next())!.payload)
      if (h.flags & ~0x3f) {
        await w.send(FrameType.ERROR, encodeError({exitCode: 1, code: 'BAD_FLAGS', message: 'unknown hello flags', hint: ''}))
        w.end()
        return
      }
      const req = await r.next()
      got.push({flags: h.flags, next: req?.payload})
      await w.send(FrameType.POINTS_LIST, Buffer.from([9]))
      w.end()
    }
    const {conn, lines, opened} = carrierTo([old, old])
    // A points query sends its request right after the HELLO, before any answer.
    await conn.writer.send(FrameType.HELLO, HELLO)
    await conn.writer.send(FrameType.POINTS_REQUEST, REQUEST)
    const first = await conn.frames.next()
    assert.equal(first?.type, FrameType.POINTS_LIST)
    assert.equal(opened(), 2)
    assert.deepEqual(got, [{flags: HelloFlag.TRUNCATE_REPLICA, next: REQUEST}])
    assert.equal(lines.filter((l) => /does not send keepalives/.test(l)).length, 1)
    await conn.close()
  })

  it('a BAD_FLAGS for another flag reaches the engine after one retry', async () => {
    const refuse: Receiver = async (r, w) => {
      await r.next()
      await w.send(FrameType.ERROR, encodeError({exitCode: 1, code: 'BAD_FLAGS', message: 'no', hint: ''}))
      w.end()
    }
    const {conn, opened} = carrierTo([refuse, refuse])
    await conn.writer.send(FrameType.HELLO, HELLO)
    assert.equal((await conn.frames.next())?.type, FrameType.ERROR)
    assert.equal(opened(), 2)
    await conn.close()
  })
})
