// The client side of a tracker's control socket, for `push`, `fullsync` and `status`:
//   const c = await TrackerControlClient.connect(disk)
//   const {bitmap} = await c.freeze()          // active -> in-flight, one point in time
//   const data = await c.readBlocks(first, n)   // frozen blocks as of the freeze
//   await c.complete(true)                      // or false: the blocks go back to the record
//   await c.close()                             // closing without complete = complete(false)
// It is also the RecordWriter of a tracked disk: push and full sync ask the tracker, the
// record's only writer while it runs, for every change of the .psf (beginCommit .. provedSync).
// One request at a time; calls made together are queued in order.
import net from 'node:net'
import {PeerGoneError, ProtocolError, RemoteError, TransportError, VdrepError} from '../errors.js'
import {Bitmap} from '../psf/bitmap.js'
import {SocketReader} from '../transport/socket-reader.js'
import {
  BLOCK_HASH_ENTRY,
  CONTROL_HEADER_SIZE,
  decodeHeader,
  decodeJson,
  encodeBlockHashes,
  encodeFrame,
  FrameKind,
  MAX_REQUEST_DATA,
  parseError,
  type ControlRequest,
} from './control-protocol.js'
import type {ReplicaRefusal} from '../psf/header.js'
import type {ReplicationSettings} from '../psf/settings.js'
import type {CommitRecord, ProvedSync, RecordWriter} from '../change-record/writer.js'
import {HASHES_PER_PAGE} from '../psf/layout.js'
import {canonicalDisk, controlSocketPath} from './paths.js'

import type {TrackerStatus} from './control-status.js'

export type {TrackerFreezeInfo, TrackerStatus} from './control-status.js'

export interface FreezeResult {
  blockSize: number
  diskSize: number
  blockCount: number
  /** Number of frozen blocks. */
  blocks: number
  /** The frozen set: one bit per block. */
  bitmap: Bitmap
}

export interface CompleteResult {
  /** Blocks cleared from the in-flight set (ok). */
  cleared: number
  /** Blocks handed back to the active set (not ok). */
  mergedBack: number
}

export interface ControlClientOptions {
  /** Per request (and connect) time limit in ms; 0 = none. Default 0. */
  timeoutMs?: number
  /** Use this socket instead of the one derived from the disk path. */
  socketPath?: string
}

interface Reply {
  body: Record<string, unknown>
  data: Buffer
}

export class TrackerControlClient implements RecordWriter {
  private queue: Promise<unknown> = Promise.resolve()
  private readonly reader: SocketReader

  private constructor(
    readonly socketPath: string,
    private readonly socket: net.Socket,
    private readonly timeoutMs: number,
  ) {
    this.reader = new SocketReader(socket)
    socket.on('error', () => {}) // surfaced by the reader
  }

  /** Connect to the tracker of `disk`; throws VdrepError TRACKER_NOT_RUNNING when none answers. */
  static async connect(disk: string, opts: ControlClientOptions = {}): Promise<TrackerControlClient> {
    const socketPath = opts.socketPath ?? controlSocketPath(await canonicalDisk(disk))
    const timeoutMs = opts.timeoutMs ?? 0
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({path: socketPath})
      const timer = timeoutMs > 0 ? setTimeout(() => s.destroy(new Error('timed out')), timeoutMs) : undefined
      s.once('connect', () => {
        clearTimeout(timer)
        resolve(s)
      })
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer)
        const gone = err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
        reject(
          gone
            ? new VdrepError('TRACKER_NOT_RUNNING', `no tracker is running for ${disk} (nothing answers on ${socketPath})`, {
                hint: 'start one with `vdrep track <disk> --nbd ...`',
              })
            : new TransportError('TRACKER_CONNECT', `cannot connect to the tracker's control socket ${socketPath}: ${err.message}`, {cause: err}),
        )
      })
    })
    return new TrackerControlClient(socketPath, socket, timeoutMs)
  }

  /** Like connect, but null when no tracker runs. */
  static async tryConnect(disk: string, opts: ControlClientOptions = {}): Promise<TrackerControlClient | null> {
    try {
      return await TrackerControlClient.connect(disk, opts)
    } catch (err) {
      if ((err as VdrepError).code === 'TRACKER_NOT_RUNNING') return null
      throw err
    }
  }

  async status(): Promise<TrackerStatus> {
    return (await this.request({op: 'status'})).body as unknown as TrackerStatus
  }

  /**
   * Move the active set into the in-flight set; this connection owns it until complete/close.
   * With `preserve: false` the tracker keeps no old contents (for a full sync, which reads the
   * disk itself): no side file, no cap, and `readBlocks` is refused.
   */
  async freeze(opts: {preserve?: boolean; holdMs?: number; timeoutMs?: number} = {}): Promise<FreezeResult> {
    const req: ControlRequest = {op: 'freeze', preserve: opts.preserve !== false, ...(opts.holdMs ? {holdMs: opts.holdMs} : {})}
    const {body, data} = await this.request(req, undefined, opts.timeoutMs ?? this.timeoutMs)
    const blockCount = num(body, 'blockCount')
    if (data.length !== Math.ceil(blockCount / 8))
      throw new ProtocolError('CONTROL_BAD_REPLY', `freeze: bitmap of ${data.length} bytes for ${blockCount} blocks`)
    return {
      blockSize: num(body, 'blockSize'),
      diskSize: num(body, 'diskSize'),
      blockCount,
      blocks: num(body, 'blocks'),
      bitmap: new Bitmap(blockCount, new Uint8Array(data)),
    }
  }

  /** End a group cut's hold (freeze with holdMs): `expired` says the lease ran out first. */
  async release(timeoutMs = this.timeoutMs): Promise<{held: boolean; expired: boolean; heldMs: number}> {
    const {body} = await this.request({op: 'release'}, undefined, timeoutMs)
    return {held: body.held === true, expired: body.expired === true, heldMs: num(body, 'heldMs')}
  }

  /**
   * The blocks not on the replica yet (active | in-flight), changing nothing; `verifying`: the
   * tracker's check against the block hash index runs (or failed), so more may be marked.
   */
  async pending(): Promise<{bitmap: Bitmap; verifying: boolean}> {
    const {body, data} = await this.request({op: 'pending'})
    const blockCount = num(body, 'blockCount')
    if (data.length !== Math.ceil(blockCount / 8))
      throw new ProtocolError('CONTROL_BAD_REPLY', `pending: bitmap of ${data.length} bytes for ${blockCount} blocks`)
    return {bitmap: new Bitmap(blockCount, new Uint8Array(data)), verifying: body.verifying === true}
  }

  /** Blocks [first, first+count) as of the freeze (the last block of the disk may be short). */
  async readBlocks(first: number, count: number): Promise<Buffer> {
    const {body, data} = await this.request({op: 'read', first, count})
    if (body.length !== data.length) throw new ProtocolError('CONTROL_BAD_REPLY', `read: ${data.length} bytes came for a reply of ${String(body.length)}`)
    return data
  }

  async complete(ok: boolean): Promise<CompleteResult> {
    const {body} = await this.request({op: 'complete', ok})
    return {cleared: num(body, 'cleared'), mergedBack: num(body, 'mergedBack')}
  }

  async beginCommit(seq: number): Promise<void> {
    await this.request({op: 'beginCommit', seq})
  }

  async adoptCommitted(seq: number): Promise<void> {
    await this.request({op: 'adoptCommitted', seq})
  }

  /** In requests of at most MAX_REQUEST_DATA bytes each. */
  async storeBlockHashes(hashes: Map<number, Buffer>): Promise<void> {
    const entries = [...hashes.entries()]
    const per = Math.floor(MAX_REQUEST_DATA / BLOCK_HASH_ENTRY)
    for (let i = 0; i < entries.length; i += per) await this.request({op: 'blockHashes'}, encodeBlockHashes(entries.slice(i, i + per)))
  }

  async commit(c: CommitRecord): Promise<void> {
    // The tracker owns CLEAN_SHUTDOWN and the stamp (it records them when it stops).
    if (c.stamp) throw new RangeError('a commit through the tracker records no stamp')
    await this.request({op: 'commit', seq: c.seq, pointInTimeMs: c.pointInTimeMs, diskSize: c.diskSize, commitId: c.commitId.toString('hex')})
  }

  async beginFullSync(): Promise<void> {
    await this.request({op: 'beginFullSync'})
  }

  /** In requests of whole index pages, at most MAX_REQUEST_DATA bytes each. */
  async writeIndexRun(firstBlock: number, hashes: Buffer): Promise<void> {
    const perPage = HASHES_PER_PAGE * 32
    const step = Math.floor(MAX_REQUEST_DATA / perPage) * perPage
    for (let at = 0; at < hashes.length; at += step) await this.request({op: 'indexRun', first: firstBlock + at / 32}, hashes.subarray(at, at + step))
  }

  async provedSync(p: ProvedSync): Promise<void> {
    if (p.stamp) throw new RangeError('a proved sync through the tracker records no stamp')
    await this.request({op: 'provedSync', diskSize: p.diskSize, replicaSeq: p.replicaSeq, syncedMs: p.syncedMs, commitId: p.commitId.toString('hex')})
  }

  /** Mark these blocks dirty as a VM write would (a reprotect's owed blocks); in requests of at most MAX_REQUEST_DATA bytes. */
  async markBlocks(blocks: Bitmap): Promise<void> {
    const bits = Buffer.from(blocks.bits.buffer, blocks.bits.byteOffset, blocks.bits.byteLength)
    for (let at = 0; at < bits.length; at += MAX_REQUEST_DATA) {
      const part = bits.subarray(at, at + MAX_REQUEST_DATA)
      if (part.some((x) => x !== 0)) await this.request({op: 'markBlocks', first: at * 8}, part)
    }
  }

  /** `vdrep config` while the tracker runs: it writes the settings (and a new binding) into the .psf. */
  async changeSettings(settings: ReplicationSettings, rebind?: {replicaId: Buffer}): Promise<void> {
    await this.request({op: 'settings', settings, ...(rebind ? {replicaId: rebind.replicaId.toString('hex')} : {})})
  }

  async replicaRefused(code: ReplicaRefusal): Promise<void> {
    await this.request({op: 'replicaRefused', code})
  }

  /** Hang up; a freeze not completed is handed back by the tracker. */
  async close(): Promise<void> {
    if (this.socket.destroyed) return
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve())
      this.socket.end()
      setTimeout(() => this.socket.destroy(), 1000).unref()
    })
  }

  private request(req: ControlRequest, data?: Buffer, timeoutMs = this.timeoutMs): Promise<Reply> {
    const p = this.queue.then(() => this.exchange(req, data, timeoutMs))
    this.queue = p.catch(() => {})
    return p
  }

  private async exchange(req: ControlRequest, data: Buffer | undefined, timeoutMs: number): Promise<Reply> {
    if (this.socket.destroyed) throw gone()
    for (const part of encodeFrame(FrameKind.REQUEST, req, data)) this.socket.write(part)
    let timer: NodeJS.Timeout | undefined
    if (timeoutMs > 0)
      timer = setTimeout(
        () => this.reader.cancel(new TransportError('TRACKER_TIMEOUT', `the tracker did not answer "${req.op}" within ${timeoutMs} ms`)),
        timeoutMs,
      )
    try {
      const h = decodeHeader(await this.reader.read(CONTROL_HEADER_SIZE), 'tracker')
      const body = decodeJson(await this.reader.read(h.jsonLength))
      const data = h.dataLength > 0 ? await this.reader.read(h.dataLength) : Buffer.alloc(0)
      if (h.kind === FrameKind.ERROR) {
        const e = parseError(body)
        throw new RemoteError(e, 'tracker')
      }
      return {body, data}
    } catch (err) {
      if (!(err instanceof RemoteError)) this.socket.destroy() // framing is lost
      if (err instanceof PeerGoneError) throw gone(err)
      throw err
    } finally {
      clearTimeout(timer)
    }
  }
}

function gone(cause?: unknown): TransportError {
  return new TransportError(
    'TRACKER_GONE',
    'the tracker closed the control connection; a push in progress must abort (its blocks are handed back to the change record)',
    {cause},
  )
}

function num(o: Record<string, unknown>, field: string): number {
  const v = o[field]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new ProtocolError('CONTROL_BAD_REPLY', `the tracker's reply has a bad "${field}": ${JSON.stringify(v)}`)
  return v
}
