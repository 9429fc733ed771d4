// One client connection: handshake, then the request loop. Requests are validated before
// any payload is read, dispatched without waiting (replies may go out of order; each
// carries its handle), and ordered against overlapping writes by the export's RangeLocks.
// The logger gets exactly one line, when the connection ends.

import type {Socket} from 'node:net'
import {DiskIoError, ProtocolError} from '../../errors.js'
import type {NbdBackend} from './backend.js'
import * as C from './constants.js'
import {messageOf, nbdErrorOf} from './error-map.js'
import {negotiate, type HandshakeConfig, type Negotiated} from './handshake.js'
import type {ExportLocks, RangeLocks, Unlock} from './range-lock.js'
import {SocketReader} from '../../transport/socket-reader.js'
import {objectArray} from '../../util/object-array.js'
import * as T from './transmission.js'

export interface ConnectionConfig extends Omit<HandshakeConfig, 'onRefuse'> {
  readOnly: boolean
  /** The server's locks: a request waits for an overlapping write of any of its connections. */
  locks: ExportLocks
  logger: (line: string) => void
}

/** Requests of one connection being served at once; the next header waits for a slot. */
const MAX_INFLIGHT = 64
/** READ/WRITE payload bytes of one connection held at once (a lone request may exceed it). */
const MAX_INFLIGHT_BYTES = 64 * 1024 * 1024
/** Reply bytes queued in the socket above which no new request is read. */
const MAX_QUEUED_REPLY_BYTES = 64 * 1024 * 1024
/** After we end our side, how long the peer gets before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000

type Counter = 'read' | 'write' | 'zero' | 'trim' | 'flush' | 'status' | 'error'

export class NbdConnection {
  readonly done: Promise<void>
  private readonly reader: SocketReader
  /** Requests being served; `freed` wakes the one waiter (the request loop, or the close) as one ends. */
  private inflight = 0
  private freed: (() => void) | null = null
  private readonly counts: Record<Counter, number> = {read: 0, write: 0, zero: 0, trim: 0, flush: 0, status: 0, error: 0}
  private bytesRead = 0
  private bytesWritten = 0
  private inflightBytes = 0
  private phase: 'handshake' | 'transmission' | 'closing' = 'handshake'
  private idle = false // waiting for the next request header
  private stopping = false
  private structured = false
  private session = ''
  private firstError: string | null = null
  private lastRefusal: string | null = null
  /** Replies ready to go, written together once per turn of the event loop (one writev). */
  private outq: Buffer[] = objectArray<Buffer>()
  private outqBytes = 0
  private flushQueued = false

  private readonly socket: Socket

  /** `socket` must not have started reading (a server made with pauseOnConnect). */
  constructor(
    socket: Socket,
    readonly id: string,
    private readonly cfg: ConnectionConfig,
  ) {
    // Reads land in the reader's recycled slabs where Node allows it, else in 'data' chunks.
    const adopted = SocketReader.adopt(socket)
    if (adopted) {
      this.socket = adopted.socket
      this.reader = adopted.reader
    } else {
      this.socket = socket
      this.reader = new SocketReader(socket)
      socket.resume()
    }
    this.done = this.run()
  }

  /** Shutdown: read no new request, finish the ones in flight, then close. */
  stop(): void {
    if (this.stopping) return
    this.stopping = true
    if (this.phase === 'handshake' || this.idle) {
      this.reader.cancel(new ProtocolError('NBD_SHUTDOWN', 'the server is shutting down'))
    }
  }

  /** Drop the connection now (shutdown timeout). */
  destroy(): void {
    this.socket.destroy()
  }

  private async run(): Promise<void> {
    const started = Date.now()
    let reason: string
    try {
      const neg = await negotiate(this.socket, this.reader, {...this.cfg, onRefuse: (r) => (this.lastRefusal = r)})
      if (neg === null) {
        reason = 'client aborted the handshake'
      } else {
        this.phase = 'transmission'
        reason = await this.serve(neg)
      }
    } catch (err) {
      reason = this.describe(err)
    }
    if (this.phase === 'handshake' && this.lastRefusal) reason += ` (last refusal: ${this.lastRefusal})`
    this.phase = 'closing'
    while (this.inflight > 0) await this.oneEnds()
    await this.close()
    try {
      this.cfg.logger(this.summary(reason, Date.now() - started))
    } catch {
      // a failing logger must not take the server down
    }
  }

  private async serve(neg: Negotiated): Promise<string> {
    const {backend} = neg
    this.structured = neg.structured
    // No array of features: this runs once per connection, too few times for V8 to learn the
    // kinds of arrays it spreads, and the VM's session (base:allocation) threw the compiled
    // request loop away ("wrong map") after a warm-up whose last session had none.
    const features = `${neg.via}, ${neg.structured ? 'structured' : 'simple'}${neg.blockStatus ? ', base:allocation' : ''}`
    this.session = `export "${backend.exportName}" (${features})`
    const locks = this.cfg.locks.for(backend)
    const limits: T.RequestLimits = {size: backend.size, maxPayload: this.cfg.maxPayload, readOnly: this.cfg.readOnly, blockStatus: neg.blockStatus}
    for (;;) {
      if (!this.hasRoom()) await this.waitForRoom()
      if (this.stopping) return 'server shut down'
      this.idle = true
      let header: Buffer
      try {
        header = this.reader.readNow(C.REQUEST_HEADER_SIZE) ?? (await this.reader.read(C.REQUEST_HEADER_SIZE))
      } catch (err) {
        const code = (err as {code?: string}).code
        if (code === 'NBD_EOF') return 'client hung up without NBD_CMD_DISC'
        if (code === 'NBD_SHUTDOWN') return 'server shut down'
        throw err
      } finally {
        this.idle = false
      }
      const req = T.parseRequest(header)
      if (!req) throw new ProtocolError('NBD_BAD_MAGIC', `bad request magic 0x${header.readUInt32BE(0).toString(16)}`)
      if (req.type === C.NBD_CMD_DISC) return 'client disconnected'
      if (req.type === C.NBD_CMD_WRITE && req.length > this.cfg.maxPayload) {
        // Never allocate or half-read it: the spec lets the server hang up.
        throw new ProtocolError('NBD_WRITE_TOO_LARGE', `write of ${req.length} bytes is over the ${this.cfg.maxPayload}-byte limit`)
      }
      const invalid = T.validateRequest(req, limits)
      if (invalid) {
        if (req.type === C.NBD_CMD_WRITE) await this.reader.skip(req.length) // keep the framing
        this.fail(req, invalid.error, invalid.message)
        continue
      }
      const payload = req.type === C.NBD_CMD_READ || req.type === C.NBD_CMD_WRITE ? req.length : 0
      while (this.inflight > 0 && this.inflightBytes + payload > MAX_INFLIGHT_BYTES) await this.oneEnds()
      const data = req.type === C.NBD_CMD_WRITE ? (this.reader.lendNow(req.length) ?? (await this.reader.lend(req.length))) : null
      this.inflightBytes += payload
      this.inflight++
      // Its end is counted inside (no promise per request to watch it): it never rejects.
      void this.execute(backend, locks, req, data, payload)
    }
  }

  private hasRoom(): boolean {
    const s = this.socket
    return this.inflight < MAX_INFLIGHT && (s.destroyed || s.writableLength + this.outqBytes <= MAX_QUEUED_REPLY_BYTES)
  }

  private async waitForRoom(): Promise<void> {
    while (this.inflight >= MAX_INFLIGHT) await this.oneEnds()
    const s = this.socket
    if (s.destroyed || s.writableLength + this.outqBytes <= MAX_QUEUED_REPLY_BYTES) return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        s.off('drain', done)
        s.off('close', done)
        resolve()
      }
      s.on('drain', done)
      s.on('close', done)
    })
  }

  /** Resolves when the next request in flight ends (one waiter at a time: the loop, then the close). */
  private oneEnds(): Promise<void> {
    return new Promise<void>((resolve) => (this.freed = resolve))
  }

  /** Run one valid request against the backend and reply, then count it ended. Never rejects. */
  private async execute(backend: NbdBackend, locks: RangeLocks, req: T.NbdRequest, data: Buffer | null, payload: number): Promise<void> {
    const offset = Number(req.offset)
    const fua = (req.flags & C.NBD_CMD_FLAG_FUA) !== 0
    let unlock: Unlock | undefined
    // Taken synchronously, so requests are ordered as they arrived.
    const locked = req.type === C.NBD_CMD_FLUSH ? null : locks.take(offset, req.length, T.isWriteType(req.type))
    try {
      if (locked) unlock = typeof locked === 'function' ? locked : await locked
      switch (req.type) {
        case C.NBD_CMD_READ: {
          const buf = await backend.read(offset, req.length)
          if (buf.length !== req.length) throw new DiskIoError(`the disk returned ${buf.length} bytes for a read of ${req.length}`)
          this.sendRead(req.handle, offset, buf)
          this.counts.read++
          this.bytesRead += buf.length
          return
        }
        case C.NBD_CMD_WRITE:
          await backend.write(offset, data as Buffer, fua)
          this.counts.write++
          this.bytesWritten += req.length
          break
        case C.NBD_CMD_FLUSH:
          await backend.flush()
          this.counts.flush++
          break
        case C.NBD_CMD_TRIM:
          await backend.trim(offset, req.length, fua)
          this.counts.trim++
          break
        case C.NBD_CMD_WRITE_ZEROES:
          await backend.writeZeroes(offset, req.length, {fua, noHole: (req.flags & C.NBD_CMD_FLAG_NO_HOLE) !== 0})
          this.counts.zero++
          break
        case C.NBD_CMD_BLOCK_STATUS: {
          const extents = await backend.blockStatus(offset, req.length)
          const desc = T.extentsToDescriptors(extents, req.length, (req.flags & C.NBD_CMD_FLAG_REQ_ONE) !== 0)
          if (!desc) throw new DiskIoError(`the disk reported no extents at offset ${offset}`)
          this.send(T.encodeBlockStatusChunk(req.handle, C.BASE_ALLOCATION_ID, desc))
          this.counts.status++
          return
        }
      }
      this.send(T.encodeSimpleReply(req.handle, 0))
    } catch (err) {
      this.fail(req, nbdErrorOf(err), `${C.COMMAND_NAMES[req.type]} of ${req.length} bytes at offset ${offset} failed: ${messageOf(err)}`)
    } finally {
      unlock?.()
      this.inflightBytes -= payload
      this.inflight--
      // The write is done with it (or failed): its slab or pooled buffer can be reused.
      if (data) this.reader.release(data)
      const freed = this.freed
      if (freed) {
        this.freed = null
        freed()
      }
    }
  }

  /**
   * Queue a reply. Replies that become ready in one turn of the event loop (the writes whose
   * completions arrived together) leave in one writev, not one syscall each.
   */
  private send(buf: Buffer): void {
    if (this.socket.destroyed || !this.socket.writable) return
    this.outq.push(buf)
    this.outqBytes += buf.length
    if (!this.flushQueued) {
      this.flushQueued = true
      setImmediate(this.flushReplies)
    }
  }

  private readonly flushReplies = (): void => {
    this.flushQueued = false
    const q = this.outq
    if (q.length === 0) return
    this.outq = objectArray<Buffer>()
    this.outqBytes = 0
    const s = this.socket
    if (s.destroyed || !s.writable) return
    if (q.length === 1) {
      s.write(q[0])
      return
    }
    s.cork()
    for (const b of q) s.write(b)
    s.uncork()
  }

  private sendRead(handle: Buffer, offset: number, data: Buffer): void {
    this.send(this.structured ? T.encodeOffsetDataHeader(handle, offset, data.length) : T.encodeSimpleReply(handle, 0))
    this.send(data)
  }

  /** Error reply: a structured chunk with the message when negotiated (required for READ). */
  private fail(req: T.NbdRequest, error: number, message: string): void {
    this.counts.error++
    this.firstError ??= message
    this.send(this.structured ? T.encodeErrorChunk(req.handle, error, message) : T.encodeSimpleReply(req.handle, error))
  }

  /** End our side once queued replies are out; destroy if the peer lingers. */
  private close(): Promise<void> {
    this.flushReplies()
    const s = this.socket
    if (s.destroyed) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => s.destroy(), CLOSE_GRACE_MS)
      timer.unref()
      s.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
      s.once('finish', () => s.destroy())
      s.end()
    })
  }

  private describe(err: unknown): string {
    const code = (err as {code?: string}).code
    if (code === 'NBD_EOF') return `client hung up during the ${this.phase === 'handshake' ? 'handshake' : 'request'}`
    if (code === 'NBD_SHUTDOWN') return 'server shut down'
    return `dropped: ${messageOf(err)}`
  }

  private summary(reason: string, ms: number): string {
    const c = this.counts
    const ops =
      `${c.read} reads (${this.bytesRead} B), ${c.write} writes (${this.bytesWritten} B), ` +
      `${c.zero} zeroes, ${c.trim} trims, ${c.flush} flushes, ${c.status} status, ${c.error} errors`
    const err = this.firstError ? `; first error: ${this.firstError}` : ''
    const what = this.session || 'no export chosen'
    return `nbd ${this.id}: ${what}: ${ops}; ${reason} after ${(ms / 1000).toFixed(1)} s${err}`
  }
}
