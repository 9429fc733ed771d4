// The connection reads through an adopted socket (slabs) when the server accepted it paused,
// and through 'data' events otherwise (the fallback where Node's internals differ): writes
// that span reads and slabs land exactly, and every slab view is given back once its write is done.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import net from 'node:net'
import path from 'node:path'
import {NbdConnection} from '../../../../src/core/tracker/nbd/connection.js'
import * as C from '../../../../src/core/tracker/nbd/constants.js'
import {ExportLocks} from '../../../../src/core/tracker/nbd/range-lock.js'
import {MemoryBackend, RawClient, requestHex, tempDir} from './harness.js'

const SIZE = 16 * 1024 * 1024

async function serveOne(dir: string, pauseOnConnect: boolean, backend: MemoryBackend) {
  const sock = path.join(dir, `c${pauseOnConnect ? 'p' : 'f'}.sock`)
  const locks = new ExportLocks()
  const logs: string[] = []
  let conn!: NbdConnection
  const server = net.createServer({pauseOnConnect}, (socket) => {
    conn = new NbdConnection(socket, 'test', {
      findExport: (name) => (name === '' || name === backend.exportName ? backend : undefined),
      exportNames: () => [backend.exportName],
      transmissionFlags: C.NBD_FLAG_HAS_FLAGS | C.NBD_FLAG_SEND_FLUSH | C.NBD_FLAG_SEND_FUA,
      maxPayload: C.DEFAULT_MAX_PAYLOAD,
      readOnly: false,
      locks,
      logger: (l) => logs.push(l),
    })
  })
  await new Promise<void>((r) => server.listen(sock, r))
  const client = await RawClient.connect({path: sock})
  await client.go(backend.exportName)
  return {server, client, logs, conn: () => conn}
}

describe('nbd connection: adopted and plain sockets', () => {
  let dir: string
  let cleanup: () => Promise<void>
  before(async () => ({dir, cleanup} = await tempDir()))
  after(async () => cleanup())

  for (const paused of [true, false]) {
    it(`${paused ? 'adopted (slabs)' : 'fallback (data events)'}: 12 MiB of odd-sized writes sent in one burst land exactly`, async () => {
      const backend = new MemoryBackend(SIZE)
      // The first writes finish late, so their views stay pinned while many slabs fill and recycle.
      backend.delay = (kind, offset) => (kind === 'write' ? (offset < 300_000 ? 300 : (offset >> 12) % 3) : 0)
      const {server, client, logs, conn} = await serveOne(dir, paused, backend)
      const expected = Buffer.alloc(SIZE)
      const parts: Buffer[] = []
      let offset = 0
      let handle = 1
      const sizes = [65536, 4096, 12345, 28, 131072, 1, 70000]
      while (offset < 12 * 1024 * 1024) {
        const n = Math.min(sizes[handle % sizes.length], SIZE - offset)
        const data = randomBytes(n)
        data.copy(expected, offset)
        parts.push(Buffer.from(requestHex(C.NBD_CMD_WRITE, handle++, offset, n), 'hex'), data)
        offset += n + 512 // gaps, so a mix-up of payloads shows
      }
      client.send(Buffer.concat(parts))
      for (let i = 1; i < handle; i++) {
        const reply = await client.read(16)
        assert.equal(reply.readUInt32BE(4), 0, `reply ${i} has no error`)
      }
      assert.ok(backend.data.equals(expected), 'the export holds exactly what was written')
      const reader = (conn() as unknown as {reader: {adopted: boolean; pinned: Map<Buffer, unknown>}}).reader
      assert.equal(reader.adopted, paused)
      assert.equal(reader.pinned.size, 0, 'every slab view was given back')
      client.send(requestHex(C.NBD_CMD_DISC, 0, 0, 0))
      await client.closed
      await conn().done
      assert.match(logs.join('\n'), new RegExp(`${handle - 1} writes`))
      await new Promise((r) => server.close(r))
    })
  }
})
