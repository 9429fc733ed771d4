// The tracker's warm-up: before the export serves, synthetic requests (the sizes and queue
// depths a VM uses) run through the same code the VM's requests will take (NbdServer and its
// connection, the recording backend, the dirty log and its activity log, FileBackend's
// gathered writes), on a scratch stack of their own: a sparse file on tmpfs, unlinked as soon
// as it is open, bitmaps and an activity log held in memory. A freshly started Node runs that
// code in its interpreter: a cold tracker took 160, 130 and 70 ms of CPU for its first three
// passes of the same 192 MiB, and the VM's first writes paid for it (0.59x qemu-nbd). Here V8
// compiles it on requests nobody waits for.
//
// It is bounded by work (MAX_PASSES) before time: V8 optimizes a function after it has run
// enough, not after a while, so a wall-clock cap cut it short exactly where the CPU was short.
// A 300 ms cap left one pass (947 requests, ~330 us each, cold code on a loaded 2-core host),
// too few for TurboFan to reach the request path: the VM's first pass then compiled it anyway
// (perf: two thirds of that pass's extra CPU in TurboFan's threads) and cost the same user CPU
// as with no warm-up at all (0.39 against 0.36 CPU-s for two cold starts of seq 64k QD16); a
// 1 s cap (three to four passes there) took it to 0.26-0.31, 2 s no further (0.30-0.31).
//
// It never touches the disk, its .psf or its bitmaps: nothing here knows them. Bounded by
// maxMs (DEFAULT_WARM_UP_MS); any failure ends it quietly (the export is only slower at first).
import {randomBytes} from 'node:crypto'
import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {Bitmap} from '../psf/bitmap.js'
import {emptyActivityLog} from '../psf/activity-log.js'
import {DirtyLog} from './dirty-log.js'
import {Freezer} from './freezer.js'
import {FileBackend} from './nbd/file-backend.js'
import * as C from './nbd/constants.js'
import {NbdServer} from './nbd/server.js'
import {WarmClient, type WarmRequest} from './nbd/warm-client.js'
import {RecordingBackend} from './recording-backend.js'
import {WriteGate} from './write-gate.js'

const KiB = 1024
const MiB = 1024 * KiB
/** What a pass writes at most: half of it at the scratch export's start, half at its end. */
const SCRATCH_BYTES = 32 * MiB
/**
 * The scratch export's size at most: past 2^30 every size and offset is a boxed number to V8,
 * whatever its value, and the scratch record's bitmaps stay small (32 KiB at 64 KiB blocks).
 */
const SCRATCH_MAX = 16 * 1024 * MiB
/** The scratch activity log's slots at most (the default log has 2026). */
const MAX_SCRATCH_AL_EXTENTS = 65536
/** Passes at most (~960 requests each), and the time after which no new request is sent. */
const MAX_PASSES = 6
export const DEFAULT_WARM_UP_MS = 1000
/**
 * VDREP_TRACKER_WARMUP=0 turns it off (A/B benchmarks, tests of the cold path);
 * VDREP_TRACKER_WARMUP_MS sets the time cap (A/B of the cap; a slow host's start).
 */
export const WARM_UP_ENABLED = process.env.VDREP_TRACKER_WARMUP !== '0'
export function warmUpCapMs(env: Record<string, string | undefined> = process.env): number {
  const raw = env.VDREP_TRACKER_WARMUP_MS?.trim()
  const ms = raw ? Number(raw) : Number.NaN
  return Number.isFinite(ms) && ms >= 0 ? Math.min(ms, 60_000) : DEFAULT_WARM_UP_MS
}

export interface WarmUpShape {
  /** The tracked disk's block size and activity-log extent size (the same code paths). */
  blockSize: number
  extentBytes: number
  alExtents: number
  /**
   * The tracked disk's size: the scratch export is as large (sparse) and a pass writes near
   * its end too, so the request path meets numbers of the kinds the VM's requests bring. V8
   * keeps integers below 2^30 unboxed (Smi): trained on a 32 MiB scratch export only, the
   * compiled path deoptimized ("not a Smi") at the VM's first request into a 1 GiB disk (its
   * size is 2^30) and compiled it again, on the VM's time. Default: SCRATCH_BYTES; at most SCRATCH_MAX.
   */
  diskSize?: number
}

export interface WarmUpResult {
  passes: number
  requests: number
  ms: number
  /** Why it stopped early, if it did (it never fails the tracker's start). */
  error?: string
}

/** One pass: what a VM sends, as first writes (bits cleared before it) and rewrites, into an export of `exportSize` bytes. */
function pass(blockSize: number, exportSize: number): Array<{reqs: WarmRequest[]; depth: number; paced?: boolean}> {
  const W = C.NBD_CMD_WRITE
  const R = C.NBD_CMD_READ
  const seq = (type: WarmRequest['type'], n: number, size: number, at: number, step = size): WarmRequest[] =>
    Array.from({length: n}, (_, i) => ({type, offset: at + ((i * step) % (SCRATCH_BYTES / 2)), length: size}))
  // The second half's writes go to the export's last SCRATCH_BYTES / 2 (64 KiB aligned).
  const half = Math.floor((exportSize - SCRATCH_BYTES / 2) / (64 * KiB)) * 64 * KiB
  return [
    // Small steps, repeated: a start on a busy host that gets through less still covers every
    // kind. Queue depth 16 weighs most: the per-turn code (gathered runs, batched replies,
    // payloads spanning slabs) runs once per batch and needs many batches to be compiled.
    // Paced, one request per turn of the loop, as a client in another process sends them: the
    // server reads each on its own (this client's unpaced window arrives as one read of a
    // megabyte), and the per-read code (the socket's and SocketReader's) was first compiled in
    // the VM's pass, with a 64 KiB stream's reads.
    {reqs: seq(W, 256, 64 * KiB, 0), depth: 16, paced: true},
    {reqs: seq(W, 128, 64 * KiB, SCRATCH_BYTES / 4), depth: 16},
    {reqs: seq(W, 512, 4 * KiB, half), depth: 16},
    // Queue depth 1 a hundred times and more: its own path (a lone write written at once) was
    // first compiled in the VM's pass after the 48 of a pass before.
    {reqs: seq(W, 64, 4 * KiB, 0, 4 * KiB * 7919), depth: 1},
    {reqs: seq(W, 96, 64 * KiB, half), depth: 1},
    {reqs: seq(W, 64, Math.max(4 * KiB, blockSize), 0, blockSize * 3), depth: 16},
    {reqs: seq(R, 64, 64 * KiB, 0), depth: 16},
    {reqs: seq(R, 16, 4 * KiB, half, 4 * KiB * 7919), depth: 1},
    {
      reqs: [
        {type: W, offset: 0, length: 4 * KiB, fua: true},
        {type: C.NBD_CMD_FLUSH, offset: 0, length: 0},
      ],
      depth: 1,
    },
  ]
}

/**
 * The scratch log's extent (blocks): the disk's, or small enough that a pass's stream crosses
 * 32 of them. A sequential stream's window of hot extents moves on once it is past the first
 * half of the window (activity-log.ts, SEQ_AHEAD): with the disk's 4 MiB extents a pass's
 * 16 MiB never got there, a VM's first 192 MiB did at its ninth extent, and V8 threw the
 * compiled `enter` away there ("insufficient type feedback").
 */
function scratchExtentBlocks(shape: WarmUpShape): number {
  return Math.max(1, Math.floor(Math.min(shape.extentBytes, SCRATCH_BYTES / 2 / 32) / shape.blockSize))
}

async function scratchDir(): Promise<string> {
  try {
    await fs.access('/dev/shm', fs.constants.W_OK)
    return '/dev/shm'
  } catch {
    return os.tmpdir()
  }
}

/** A connected client of a scratch export built like the tracker's, and how to take it all down. */
export interface ScratchExport {
  client: WarmClient
  /** The scratch record's active bitmap (cleared: the next writes are first writes again). */
  active: Bitmap
  /** The scratch export's size (bytes). */
  size: number
  close(): Promise<void>
}

/**
 * `meta`: the client selects base:allocation, as qemu does (nbdcopy does not); the two stacks
 * of a warm-up take one each, so the request loop is compiled for both kinds of session.
 */
export async function openScratchExport(shape: WarmUpShape, meta = false): Promise<ScratchExport> {
  const size = Math.max(SCRATCH_BYTES, Math.min(shape.diskSize ?? 0, SCRATCH_MAX))
  const cleanup: Array<() => unknown> = []
  const close = async () => {
    for (const f of cleanup.reverse()) await Promise.resolve(f()).catch(() => {})
  }
  try {
    const dir = await scratchDir()
    const tag = `vdrep-warm-up-${process.pid}-${randomBytes(6).toString('hex')}`
    const file = path.join(dir, `${tag}.img`)
    const fh = await fs.open(file, 'wx', 0o600)
    try {
      await fh.truncate(size)
    } finally {
      await fh.close()
    }
    let inner: FileBackend
    try {
      inner = await FileBackend.open(file)
    } finally {
      await fs.rm(file, {force: true}) // open (or not): the name goes at once
    }
    cleanup.push(() => inner.close())
    const bs = shape.blockSize
    const blockCount = Math.ceil(size / bs)
    const active = new Bitmap(blockCount)
    // Shaped as ChangeRecord's bitmapStore and activityLogStore are (the same properties in the
    // same order; one object for both had a map of its own): the dirty log's and the activity
    // log's calls into them are compiled for the maps the VM's requests will meet.
    // Their writes take a millisecond, as a write and an fdatasync of the .psf do: the log's
    // transactions are still flushing when the next writes come, code the VM's first writes
    // reached (and V8 threw the compiled `enter` away there) when these ended at once.
    const bitmaps = {path: `${file} (memory)`, writeBitmap: aMillisecond}
    const alStore = {writeActivityLog: aMillisecond}
    const log = new DirtyLog(bitmaps, active, new Bitmap(blockCount), {
      // As many slots as the disk's log: a transaction's search for free slots (lru-slots.ts)
      // walks them all, and with 64 it never ran long enough to be compiled before the VM's.
      al: {image: emptyActivityLog(Math.min(shape.alExtents, MAX_SCRATCH_AL_EXTENTS)), extentBlocks: scratchExtentBlocks(shape), store: alStore},
    })
    cleanup.push(() => log.close())
    log.useLog = true
    const gate = new WriteGate()
    const freezer = new Freezer(log, gate, inner, {blockSize: bs, diskSize: size, blockCount}, {cowPath: `${file}.cow`, cowLimit: 0})
    const server = new NbdServer(new RecordingBackend(inner, log, gate, freezer, bs))
    cleanup.push(() => server.close())
    // An abstract unix socket: no file, and only this process knows its name.
    const sock = `\0${tag}`
    await server.listen({kind: 'unix', path: sock})
    // Connections that hang up before the handshake first, as probes of the socket do (a
    // service manager's, a script's, the bench's): the failed write or read runs code of the
    // socket's streams that the request path shares, and V8 threw away what it had compiled
    // of that code when a probe came after the warm-up.
    await hangUp(sock, true)
    await hangUp(sock, false)
    const client = await WarmClient.connect(sock, inner.exportName, 64 * KiB, meta)
    cleanup.push(() => client.close())
    return {client, active, size, close}
  } catch (err) {
    await close()
    throw err
  }
}

const aMillisecond = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 1))

/**
 * Connect to `sock` and hang up: `early`, before the server has accepted (it then writes its
 * greeting into a closed socket, EPIPE, as for a probe from another process), else once the
 * connection is up (its read fails, ECONNRESET).
 */
function hangUp(sock: string, early: boolean): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({path: sock})
    s.once('error', () => resolve())
    s.once('close', () => resolve())
    if (early) s.destroy()
    else s.once('connect', () => s.destroy())
  })
}

export async function warmUp(shape: WarmUpShape, maxMs = warmUpCapMs()): Promise<WarmUpResult> {
  const started = performance.now()
  const out: WarmUpResult = {passes: 0, requests: 0, ms: 0}
  let scratch: ScratchExport | undefined
  try {
    scratch = await openScratchExport(shape, true)
    const more = () => out.passes < MAX_PASSES && performance.now() - started < maxMs
    while (more()) {
      scratch.active.bits.fill(0) // the next pass's writes are first writes again
      for (const step of pass(shape.blockSize, scratch.size)) {
        out.requests += await scratch.client.run(step.reqs, step.depth, started + maxMs, step.paced)
      }
      out.passes++
      if (out.passes === 1 && more()) {
        // A new stack after the first pass: closing one (its connection, socket, timers) changes
        // the hidden classes the compiled request path depends on, and V8 throws that code away.
        // Closed here, not only at the end, the code compiled by the passes after it holds.
        await scratch.close()
        scratch = undefined
        scratch = await openScratchExport(shape)
      }
    }
  } catch (err) {
    out.error = (err as Error).message
  } finally {
    await scratch?.close()
    out.ms = performance.now() - started
  }
  return out
}
