// The smallest NBD client that drives the server's transmission path: fixed newstyle,
// structured replies, optionally base:allocation, NBD_OPT_GO (as qemu and nbdcopy choose
// an export), then batches of requests kept at a queue depth.
// Used only by the tracker's warm-up (tracker/warm-up.ts), against its own scratch export;
// it trusts that server (no limits on what it reads back) and fails on any error reply.

import net from 'node:net'
import * as C from './constants.js'

export interface WarmRequest {
  type: typeof C.NBD_CMD_READ | typeof C.NBD_CMD_WRITE | typeof C.NBD_CMD_FLUSH
  offset: number
  length: number
  fua?: boolean
}

const SIMPLE = C.SIMPLE_REPLY_HEADER_SIZE
const STRUCTURED = C.STRUCTURED_REPLY_HEADER_SIZE

export class WarmClient {
  private buf: Buffer = Buffer.alloc(0)
  private want: {n: number; resolve: () => void} | null = null
  private failure: Error | null = null
  private readonly payload: Buffer

  private constructor(
    private readonly socket: net.Socket,
    maxPayload: number,
  ) {
    // Not zeros: a payload of zeros could take a path real data never takes.
    this.payload = Buffer.alloc(maxPayload, 0xa5)
    socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d])
      this.wake()
    })
    const gone = (err?: Error): void => {
      this.failure ??= err ?? new Error('the warm-up export closed the connection')
      this.wake()
    }
    socket.on('error', gone)
    socket.on('close', () => gone())
  }

  /**
   * Connect and negotiate; `maxPayload` bounds the requests' lengths. `meta`: select
   * base:allocation first, as qemu does (nbdcopy does not).
   */
  static async connect(path: string, exportName: string, maxPayload: number, meta = false): Promise<WarmClient> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({path})
      s.once('connect', () => resolve(s))
      s.once('error', reject)
    })
    const c = new WarmClient(socket, maxPayload)
    await c.take(18) // greeting
    const flags = Buffer.alloc(4)
    flags.writeUInt32BE(C.NBD_FLAG_C_FIXED_NEWSTYLE | C.NBD_FLAG_C_NO_ZEROES)
    socket.write(flags)
    socket.write(option(C.NBD_OPT_STRUCTURED_REPLY, Buffer.alloc(0)))
    await c.optionReplies(C.NBD_OPT_STRUCTURED_REPLY)
    const name = Buffer.from(exportName, 'utf8')
    if (meta) {
      const query = Buffer.from(C.BASE_ALLOCATION, 'utf8')
      const data = Buffer.alloc(4 + name.length + 4 + 4 + query.length)
      data.writeUInt32BE(name.length, 0)
      name.copy(data, 4)
      data.writeUInt32BE(1, 4 + name.length)
      data.writeUInt32BE(query.length, 8 + name.length)
      query.copy(data, 12 + name.length)
      socket.write(option(C.NBD_OPT_SET_META_CONTEXT, data))
      await c.optionReplies(C.NBD_OPT_SET_META_CONTEXT)
    }
    const go = Buffer.alloc(4 + name.length + 2) // no information requests
    go.writeUInt32BE(name.length, 0)
    name.copy(go, 4)
    socket.write(option(C.NBD_OPT_GO, go))
    await c.optionReplies(C.NBD_OPT_GO)
    return c
  }

  /** The replies to one option, up to its ACK (an error reply fails the warm-up). */
  private async optionReplies(opt: number): Promise<void> {
    for (;;) {
      const head = await this.take(C.OPTION_REPLY_HEADER_SIZE)
      const type = head.readUInt32BE(12)
      await this.take(head.readUInt32BE(16))
      if (type === C.NBD_REP_ACK) return
      if ((type & 0x80000000) !== 0) throw new Error(`the warm-up export refused option ${opt} (reply 0x${type.toString(16)})`)
    }
  }

  /**
   * Send `reqs` keeping `depth` in flight, none after `deadline` (performance.now()); resolves
   * with how many were sent once all their replies are in. `paced`: one request per turn of
   * the event loop (the server then reads each apart), else as many as the window allows.
   */
  async run(reqs: WarmRequest[], depth: number, deadline = Infinity, paced = false): Promise<number> {
    const header = Buffer.alloc(C.REQUEST_HEADER_SIZE)
    header.writeUInt32BE(C.NBD_REQUEST_MAGIC, 0)
    let sent = 0
    const send = (): void => {
      const r = reqs[sent]
      header.writeUInt16BE(r.fua ? C.NBD_CMD_FLAG_FUA : 0, 4)
      header.writeUInt16BE(r.type, 6)
      header.writeUInt32BE(sent, 12) // the handle: the request's index
      header.writeBigUInt64BE(BigInt(r.offset), 16)
      header.writeUInt32BE(r.type === C.NBD_CMD_FLUSH ? 0 : r.length, 24)
      // Copied: the socket may still hold the header when the next one is written.
      this.socket.write(Buffer.from(header))
      if (r.type === C.NBD_CMD_WRITE) this.socket.write(this.payload.subarray(0, r.length))
      sent++
    }
    const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
    if (performance.now() >= deadline) return 0
    while (sent < Math.min(depth, reqs.length)) {
      send()
      if (paced) await turn()
    }
    for (let got = 0; got < sent; got++) {
      await this.reply(reqs)
      if (sent < reqs.length && performance.now() < deadline) {
        if (paced) await turn()
        send()
      }
    }
    return sent
  }

  async close(): Promise<void> {
    const disc = Buffer.alloc(C.REQUEST_HEADER_SIZE)
    disc.writeUInt32BE(C.NBD_REQUEST_MAGIC, 0)
    disc.writeUInt16BE(C.NBD_CMD_DISC, 6)
    if (!this.socket.destroyed) this.socket.end(disc)
    await new Promise<void>((resolve) => (this.socket.destroyed ? resolve() : this.socket.once('close', () => resolve())))
  }

  /** One reply, simple or structured; a read's data is consumed with it. */
  private async reply(reqs: WarmRequest[]): Promise<void> {
    const head = await this.take(4)
    const magic = head.readUInt32BE(0)
    if (magic === C.NBD_SIMPLE_REPLY_MAGIC) {
      const rest = await this.take(SIMPLE - 4)
      if (rest.readUInt32BE(0) !== 0) throw new Error(`the warm-up export failed a request (error ${rest.readUInt32BE(0)})`)
      return
    }
    if (magic !== C.NBD_STRUCTURED_REPLY_MAGIC) throw new Error(`bad reply magic 0x${magic.toString(16)} from the warm-up export`)
    const rest = await this.take(STRUCTURED - 4)
    const type = rest.readUInt16BE(2)
    const index = rest.readUInt32BE(8)
    await this.take(rest.readUInt32BE(12))
    if (type !== C.NBD_REPLY_TYPE_OFFSET_DATA || reqs[index]?.type !== C.NBD_CMD_READ) {
      throw new Error(`the warm-up export answered request ${index} with reply type ${type}`)
    }
  }

  private async take(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.failure) throw this.failure
      await new Promise<void>((resolve) => (this.want = {n, resolve}))
    }
    const out = this.buf.subarray(0, n)
    this.buf = this.buf.subarray(n)
    return out
  }

  private wake(): void {
    const w = this.want
    if (w && (this.buf.length >= w.n || this.failure)) {
      this.want = null
      w.resolve()
    }
  }
}

function option(opt: number, data: Buffer): Buffer {
  const b = Buffer.alloc(16 + data.length)
  b.writeBigUInt64BE(C.NBD_OPTS_MAGIC, 0)
  b.writeUInt32BE(opt, 8)
  b.writeUInt32BE(data.length, 12)
  data.copy(b, 16)
  return b
}
